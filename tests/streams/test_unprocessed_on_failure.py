"""A failed batch body must leave its records uncommitted: Faust's take_events acks the batch
in a finally even when the body raised (the score agent lost runs of records that way)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from streams import faust_fixes
from streams.app import unprocessed_on_failure

TOPIC = "jobs.completed"


class Message:
    def __init__(self, offset: int) -> None:
        self.acked, self.refcount, self.tp, self.topic, self.offset, self.generation_id = False, 1, TP(TOPIC, 0), TOPIC, offset, 1

    def ack(self, consumer):  # faust's Message.ack, reduced: the final ack goes to the consumer
        if not self.acked:
            self.refcount -= 1
            if self.refcount == 0:
                return Consumer.ack(consumer, self)
        return False


def consumer() -> SimpleNamespace:
    faust_fixes.install()
    tp = TP(TOPIC, 0)
    return SimpleNamespace(_committed_offset=defaultdict(lambda: None, {tp: 0}), _acked=defaultdict(list),
                           _acked_index=defaultdict(set), _gap=defaultdict(list), _unacked_messages=set(),
                           _n_acked=0, _waiting_for_ack=None,
                           app=SimpleNamespace(consumer_generation_id=1,
                                               topics=SimpleNamespace(acks_enabled_for=lambda topic: True)))


def test_a_failed_batch_is_never_counted_a_completed_one_is() -> None:
    c = consumer()
    failed = [SimpleNamespace(message=Message(o)) for o in range(3)]
    with pytest.raises(RuntimeError):
        with unprocessed_on_failure(failed):
            raise RuntimeError("the sink blew up")
    # take_events' finally acks the batch anyway: none of it may count toward a commit
    assert not any(ev.message.ack(c) for ev in failed)
    assert Consumer._new_offset(c, TP(TOPIC, 0)) is None

    done = [SimpleNamespace(message=Message(o)) for o in range(3)]  # the re-read copies
    with unprocessed_on_failure(done):
        pass
    assert all(ev.message.ack(c) for ev in done)
    assert Consumer._new_offset(c, TP(TOPIC, 0)) == 3
