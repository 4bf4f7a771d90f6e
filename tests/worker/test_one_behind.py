"""OneBehind (worker/app.py): an agent's output stage runs one batch behind its input stage,
in order, with failures surfacing in the agent."""

from __future__ import annotations

import asyncio

import pytest

from worker.app import OneBehind


def test_stages_overlap_the_next_batch_but_keep_their_order() -> None:
    log: list[str] = []

    async def stage(n: int, delay: float) -> None:
        log.append(f"start {n}")
        await asyncio.sleep(delay)
        log.append(f"end {n}")

    async def agent() -> None:
        behind = OneBehind()
        for n, delay in enumerate((0.05, 0.0, 0.02)):
            log.append(f"input {n}")  # the next batch's input work, while the last stage runs
            await behind.push(stage(n, delay))
        await behind.drain()

    asyncio.run(agent())
    assert log.index("input 1") < log.index("end 0")  # batch 1's input work overlapped stage 0
    assert log.index("input 2") < log.index("end 1")
    # whatever the scheduling, a stage never starts before the previous one ended
    for n in (1, 2):
        assert log.index(f"start {n}") > log.index(f"end {n - 1}")


def test_a_failed_stage_raises_at_the_next_push_and_the_next_stage_never_runs() -> None:
    ran: list[int] = []

    async def stage(n: int) -> None:
        ran.append(n)
        if n == 0:
            raise RuntimeError("sink down")

    async def agent() -> None:
        behind = OneBehind()
        await behind.push(stage(0))
        await asyncio.sleep(0)  # stage 0 runs and fails in the background
        second = stage(1)
        with pytest.raises(RuntimeError, match="sink down"):
            await behind.push(second)
        assert second.cr_frame is None  # closed, never started: nothing of batch 1 is reported
        await behind.drain()  # nothing left

    asyncio.run(agent())
    assert ran == [0]


def test_cancel_stops_the_stage_in_flight() -> None:
    finished: list[int] = []

    async def stage() -> None:
        await asyncio.sleep(10)
        finished.append(1)

    async def agent() -> None:
        behind = OneBehind()
        await behind.push(stage())
        await asyncio.sleep(0)
        task = behind._task
        behind.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(agent())
    assert finished == []
