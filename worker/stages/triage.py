"""First stage of a ``jobs.completed`` batch: decode each record and check it against the
contract, the pricing file and the catalog, once per source offset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from contracts.codec import content_hash
from contracts.errors import DecodeError, InvalidEvent
from objects.claims import check_refs
from sentinel.cost import Pricing
from sentinel.validation import check_job
from worker import codecs
from worker.stages.gate import Catalog


@dataclass
class Accepted:
    """A decoded, checked JobCompleted record (read-only once made)."""

    event: dict[str, Any]
    partition: int
    offset: int
    _digest: str | None = field(default=None, repr=False, compare=False)

    def content_hash(self) -> str:
        """``contracts.codec.content_hash`` of the event, computed once."""
        if self._digest is None:
            self._digest = content_hash(self.event)
        return self._digest


@dataclass(frozen=True)
class Rejected:
    raw: bytes
    key: bytes | None
    partition: int
    offset: int
    error: str
    reason: str
    detail: str


class Triage:
    """Decode + check; ``max_image_bytes`` from the settings, unpriced GPU types and unknown
    models or niches (the catalog; None accepts any) are rejected with a reason."""

    def __init__(self, pricing: Pricing, max_image_bytes: int, catalog: Catalog | None = None) -> None:
        self.pricing = pricing
        self.max_image_bytes = max_image_bytes
        self.catalog = catalog

    def __call__(self, events: Sequence[Any]) -> tuple[list[Accepted], list[Rejected]]:
        """Each source offset once (a batch can hold a record twice when Faust re-fetches)."""
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        seen: set[tuple[int, int]] = set()
        for ev in events:
            msg = ev.message
            if (msg.partition, msg.offset) in seen:
                continue
            seen.add((msg.partition, msg.offset))
            result = self.one(ev.value, ev.key, msg.partition, msg.offset)
            (accepted if isinstance(result, Accepted) else rejected).append(result)
        return accepted, rejected

    def one(self, value: bytes, key: bytes | None, partition: int, offset: int) -> Accepted | Rejected:
        try:
            event = codecs.decode("JobCompleted", value)
            check_job(event, max_image_bytes=self.max_image_bytes)
            check_refs(event)
            if event["provider"] != "api" and event["gpu_type"] not in self.pricing.gpu_usd_per_hour:
                raise InvalidEvent("unpriced_gpu_type", f"{event['gpu_type']!r} is not in the pricing file")
            if self.catalog is not None:
                self.catalog.check(event)
            return Accepted(event, partition, offset)
        except (DecodeError, InvalidEvent) as exc:
            return Rejected(value, key, partition, offset, type(exc).__name__, exc.reason, exc.detail)
