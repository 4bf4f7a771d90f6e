"""The one retry rule (worker/delivery/retry.py): outages are retried, Fenced and NotRetried end
the loop at once, and ``once`` keeps what a retried attempt built."""

from __future__ import annotations

import asyncio

import pytest

from worker.delivery.retry import Fenced, NotRetried, once, until_done


def test_outages_are_retried_and_a_bug_or_a_fence_ends_the_loop() -> None:
    calls, retries = [], []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "stored"

    assert asyncio.run(until_done(flaky, "write", lambda: retries.append(1))) == "stored"
    assert (len(calls), len(retries)) == (3, 2)
    for stop in (NotRetried("a bug"), Fenced("moved")):
        tries = []

        async def fails(stop=stop):
            tries.append(1)
            raise stop

        with pytest.raises(type(stop)):
            asyncio.run(until_done(fails, "write"))
        assert tries == [1]


def test_once_builds_at_the_first_call_only_and_a_failure_is_not_retried() -> None:
    builds = []
    get = once(lambda: builds.append(1) or len(builds), "building rows")
    assert builds == [] and (get(), get()) == (1, 1) and builds == [1]

    def broken():
        raise KeyError("gpu_seconds")

    with pytest.raises(NotRetried, match="building rows failed: KeyError: 'gpu_seconds'") as caught:
        once(broken, "building rows")()
    assert isinstance(caught.value.__cause__, KeyError)
