"""Micro-batching: concurrent verdicts share encoder calls and get the same answers as one by one."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from guard.batcher import MicroBatcher, Overloaded
from guard_helpers import AUTH, body, make_app


def test_batches_close_when_full_or_on_time() -> None:
    calls: list[list[int]] = []
    threads: set[str] = set()

    def double(items):
        calls.append(list(items))
        threads.add(threading.current_thread().name)
        return [2 * i for i in items]

    async def go():
        pool = ThreadPoolExecutor(1, thread_name_prefix="enc")
        batcher = MicroBatcher(double, max_batch=4, max_wait_s=0.5, executor=pool)
        full = await asyncio.gather(*(batcher.submit(i) for i in range(8)))  # two full batches, no wait
        alone = await batcher.submit(100)  # closes on time with one item
        await batcher.close()
        pool.shutdown()
        return full, alone
    full, alone = asyncio.run(go())
    assert full == [2 * i for i in range(8)] and alone == 200
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [100]]
    assert threads == {"enc_0"}  # never the event loop's thread


def test_an_encoder_error_reaches_every_caller_and_the_queue_is_bounded() -> None:
    def broken(items):
        raise RuntimeError("encoder down")

    async def go():
        pool = ThreadPoolExecutor(1)
        batcher = MicroBatcher(broken, max_batch=8, max_wait_s=0.01, executor=pool, max_queue=2)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(2)), return_exceptions=True)
        third = [batcher.submit(i) for i in range(3)]
        more = await asyncio.gather(*third, return_exceptions=True)
        await batcher.close()
        pool.shutdown()
        return results, more
    results, more = asyncio.run(go())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert sum(isinstance(r, Overloaded) for r in more) == 1


@pytest.mark.parametrize("n", [24])
def test_concurrent_requests_share_encoder_calls_with_unbatched_results(tiny_scorer, n) -> None:
    batched, _ = make_app(tiny_scorer, max_batch=8, max_wait_ms=200)
    single, _ = make_app(tiny_scorer, max_batch=1)
    bodies = [body(i, job_id=f"j{i}") for i in range(n)]

    async def concurrent(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
            return await asyncio.gather(*(c.post("/v1/verdicts", json=b, headers=AUTH) for b in bodies))

    async def one_by_one(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
            return [await c.post("/v1/verdicts", json=b, headers=AUTH) for b in bodies]

    together = asyncio.run(concurrent(batched))
    alone = asyncio.run(one_by_one(single))
    assert [r.status_code for r in together + alone] == [200] * (2 * n)
    calls = batched.state.batcher.batches
    assert calls < n, f"{n} concurrent requests took {calls} encoder calls"
    assert single.state.batcher.batches == n
    for a, b in zip(together, alone):
        va, vb = a.json(), b.json()
        assert va["job_id"] == vb["job_id"] and va["passed"] == vb["passed"]
        assert va["failed_checks"] == vb["failed_checks"]
        assert va["score"] == pytest.approx(vb["score"], abs=1e-3)
        for ca, cb in zip(va["checks"], vb["checks"]):
            assert ca["name"] == cb["name"] and ca["passed"] == cb["passed"]
            assert (ca["value"] is None) == (cb["value"] is None)
            if ca["value"] is not None:
                assert ca["value"] == pytest.approx(cb["value"], abs=1e-3)
