"""Dead letters: the original bytes and key of a record that cannot be used, with headers that
say why (error class, reason, message, source topic/partition/offset, time)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Sequence

from worker.delivery.sends import Outgoing, send_delivered
from worker.stages.triage import Rejected

log = logging.getLogger(__name__)


def dead_letter_message(source: str, bad: Rejected) -> Outgoing:
    return Outgoing(bad.key, bad.raw, {
        "error_class": bad.error.encode(),
        "reason": bad.reason.encode(),
        "message": bad.detail[:1000].encode(),
        "source_topic": source.encode(),
        "source_partition": str(bad.partition).encode(),
        "source_offset": str(bad.offset).encode(),
        "time": datetime.now(timezone.utc).isoformat().encode(),
    })


class DeadLetters:
    """Sends to one dead-letter topic; returns once the broker acknowledged every letter."""

    def __init__(self, topic: Any, source: str, metrics: Any) -> None:
        self.topic = topic
        self.source = source
        self.metrics = metrics

    async def send(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        for bad in rejected:
            self.metrics.dead_letters.labels(self.source, bad.reason).inc()
            log.warning("dead-letter %s[%d]@%d: %s %s", self.source, bad.partition, bad.offset, bad.reason, bad.detail)
        await send_delivered(self.topic, [dead_letter_message(self.source, bad) for bad in rejected],
                             f"dead letters of {self.source}", self.metrics.send_retries.inc)


def rejected_event(ev: Any, exc: Any) -> Rejected:
    """A Faust event that failed to decode or validate (``exc``: a RecordError)."""
    msg = ev.message
    return Rejected(ev.value, ev.key, msg.partition, msg.offset, type(exc).__name__, exc.reason, exc.detail)


