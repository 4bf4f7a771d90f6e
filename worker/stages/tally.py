"""Live tallies: per model x niche x event-time bucket x source partition, cost and GPU-second
tallies and latency t-digests in a changelog-backed Faust table, offset-idempotent.

One table write per key per batch (the digests of a busy key are tens of KB; writing them per
event made the changelog the bottleneck). Faust writes a table's changelog to the partition of
the *current* event, and a key holds one source partition, so each key is written with its
own last event made current.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from sentinel.buckets import bucket_start, live_key
from sentinel.cost import Pricing
from sentinel.guard_tally import guard_input
from sentinel.latency import LiveStats, latency_parts
from worker.delivery.overrides import make_current
from worker.stages.live_index import LiveIndex
from worker.stages.table_states import TableStates
from worker.stages.triage import Accepted

Committed = Callable[[int], "int | None"]  # source partition -> its committed offset


class TallyStage:
    def __init__(self, table: Any, pricing: Pricing, bucket_s: int, retention_s: int, committed: Committed) -> None:
        self.table = table
        self.pricing = pricing
        self.bucket_s = bucket_s
        self.retention_s = retention_s
        self.committed = committed
        self.states = TableStates(table, lambda stored: LiveStats.from_dict(stored["stats"] if stored else None))
        self.newest_bucket: dict[int, int] = {}
        self.index = LiveIndex(table, bucket_s)  # the expiry reads one partition's old buckets

    def forget(self) -> None:
        self.states.forget()

    def __call__(self, batch: Sequence[Accepted], raw: Mapping[tuple[int, int], Any]) -> None:
        """Apply ``batch`` (``raw``: its Faust events by (partition, offset)); on failure the
        cached states are dropped (they may be half-updated) and the error raised."""
        try:
            self._apply(batch, raw)
        except BaseException:
            self.states.forget()
            raise

    def _apply(self, batch: Sequence[Accepted], raw: Mapping[tuple[int, int], Any]) -> None:
        changed: dict[str, tuple[LiveStats, Any]] = {}
        expire: dict[int, tuple[int, Any]] = {}
        for a in batch:
            e, ev = a.event, raw[(a.partition, a.offset)]
            key = live_key(e, a.partition, self.bucket_s)
            state = changed[key][0] if key in changed else self.states.get(key)
            cost = self.pricing.job_cost(provider=e["provider"], gpu_type=e["gpu_type"],
                                         gpu_seconds=e["gpu_seconds"], api_cost_usd=e.get("api_cost_usd"))
            if state.update(partition=a.partition, offset=a.offset, parts_ms=latency_parts(e),
                            gpu_seconds=e["gpu_seconds"], cost_usd=cost, guard=guard_input(e)):
                changed[key] = (state, ev)
            bucket = bucket_start(e["requested_at"], self.bucket_s)
            if bucket > self.newest_bucket.get(a.partition, -1):
                self.newest_bucket[a.partition] = bucket
                expire[a.partition] = (bucket, ev)
        for key, (state, ev) in changed.items():
            state.tally.settle(ev.message.partition, self.committed(ev.message.partition))
            make_current(ev)
            self.states.put(key, state, {"bucket_s": self.bucket_s, "stats": state.to_dict()})
        for partition, (bucket, ev) in expire.items():
            make_current(ev)
            for key in self._expire(partition, bucket - self.retention_s):
                self.states.forget(key)

    def _expire(self, partition: int, before_epoch_s: int) -> list[str]:
        """Drop this partition's buckets older than the retention (its event is current, so the
        tombstones go to the right changelog partition)."""
        old = self.index.older(partition, before_epoch_s)
        for key in old:
            del self.table[key]
        return old
