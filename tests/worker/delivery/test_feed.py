"""The feeds (worker/delivery/feed.py): batches in fetch order, the fetch loop held while a feed
is full or flow is suspended, a feed emptied on resume; the two overrides that route records
to feeds and commit fed partitions. Driven with mode's own FlowControlEvent and Faust's own
Consumer code; the real-broker proof is every integration test (each agent reads a feed)."""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.conductor import Conductor
from faust.transport.consumer import Consumer
from aiokafka.structs import TopicPartition
from faust.types import TP
from mode.utils.queues import FlowControlEvent

from sentinel.offsets import CommitLedger
from worker.delivery import overrides
from worker.delivery.commit import CommitProtocol
from worker.delivery.feed import Feed, Record

TOPIC = "jobs.completed"


def message(offset: int, partition: int = 0) -> SimpleNamespace:
    """A fetched record as Faust's fetch loop passes it (its ``tp`` is aiokafka's, not Faust's)."""
    return SimpleNamespace(topic=TOPIC, partition=partition, offset=offset, key=b"k%d" % offset,
                           value=b"v%d" % offset, tp=TopicPartition(TOPIC, partition))


async def fetched(feed: Feed, msg: SimpleNamespace) -> None:
    """The hand-over of one record, through the handler the conductor builds for its partition."""
    await feed.handler(TP(msg.topic, msg.partition))(msg)


def faust_tp(tp: object) -> object:
    assert type(tp) is TP, f"Faust's consumer asserts its own TP type, got {type(tp).__name__}"
    return tp


def fake_app(flow: FlowControlEvent | None = None) -> SimpleNamespace:
    """What a feed uses of the app, recording the consumer's pause/resume calls."""
    calls: list[tuple[str, TP]] = []
    return SimpleNamespace(
        flow_control=flow or FlowControlEvent(initially_suspended=False), calls=calls, rebalancing=False,
        consumer=SimpleNamespace(on_buffer_full=lambda tp: calls.append(("full", faust_tp(tp))),
                                 on_buffer_drop=lambda tp: calls.append(("drop", faust_tp(tp)))),
        producer=SimpleNamespace(buffer=SimpleNamespace(size=0, max_messages=100)),
        monitor=SimpleNamespace(stream_inbound_time={}))


def running_feed(maxsize: int = 100, app: SimpleNamespace | None = None) -> Feed:
    return Feed(TOPIC, app or fake_app(), maxsize)


async def take(feed: Feed, n: int, within: float, batches: int) -> list[list[Record]]:
    out = []
    async for batch in feed.take_events(n, within=within):
        out.append(batch)
        if len(out) == batches:
            return out
    return out


def test_batches_come_in_fetch_order_full_or_after_within() -> None:
    async def main() -> tuple[list[list[Record]], float]:
        feed = running_feed()
        for o in range(5):
            await fetched(feed, message(o))
        loop = asyncio.get_running_loop()
        t = loop.time()
        got = await take(feed, 3, 0.2, 2)
        return got, loop.time() - t

    batches, seconds = asyncio.run(main())
    assert [[r.message.offset for r in b] for b in batches] == [[0, 1, 2], [3, 4]]
    assert [(r.key, r.value) for r in batches[1]] == [(b"k3", b"v3"), (b"k4", b"v4")]
    assert 0.15 < seconds < 1.0  # the full batch at once, the short one after ``within``
    weakref.ref(batches[0][0])  # Faust's current event is held by weak reference


def test_a_full_feed_holds_the_fetch_loop_until_the_agent_takes_a_batch() -> None:
    async def main() -> list[int]:
        feed = running_feed(maxsize=2)
        await fetched(feed, message(0))
        await fetched(feed, message(1))
        third = asyncio.ensure_future(fetched(feed, message(2)))
        await asyncio.sleep(0.05)
        assert not third.done() and len(feed) == 2
        [batch] = await take(feed, 2, 0.01, 1)
        await asyncio.wait_for(third, 1)
        [rest] = await take(feed, 2, 0.01, 1)
        return [r.message.offset for r in batch + rest]

    assert asyncio.run(main()) == [0, 1, 2]


def test_a_suspended_flow_holds_records_and_a_resume_empties_the_feed() -> None:
    async def main() -> tuple[list[int], bool]:
        flow = FlowControlEvent(initially_suspended=False)
        feed = Feed(TOPIC, fake_app(flow), 100)
        await fetched(feed, message(0))  # fetched before a rebalance
        flow.suspend()
        held = asyncio.ensure_future(fetched(feed, message(7)))
        await asyncio.sleep(0.05)
        waited = not held.done()
        flow.resume()  # clears the managed feed: offset 0 is read again from the commit
        await asyncio.wait_for(held, 1)
        [batch] = await take(feed, 10, 0.01, 1)
        return [r.message.offset for r in batch], waited

    offsets, waited = asyncio.run(main())
    assert waited and offsets == [7]


def test_the_actor_subscribes_the_topic_and_runs_the_agent_on_the_feed() -> None:
    iterated = []

    class Channel:  # Faust's Topic: iterating it registers a channel with the conductor
        def __aiter__(self):
            iterated.append(True)
            return self

        async def __anext__(self):
            raise AssertionError("the agent reads the feed, never the channel")

    stream = SimpleNamespace(channel=Channel())
    feed = running_feed()
    seen = []

    async def agent(source) -> None:
        seen.append(source)

    asyncio.run(feed.actor(agent)(stream))
    assert iterated == [True] and seen == [feed]


def test_one_feed_per_input_topic() -> None:
    protocol = CommitProtocol()
    app = fake_app()
    feed = protocol.feed(app, TOPIC, 4096)
    assert protocol.feeds == {TOPIC: feed} and feed.maxsize == 4096
    with pytest.raises(ValueError, match="one agent per input topic"):
        protocol.feed(app, TOPIC, 4096)


def test_the_conductor_hands_a_fed_topics_records_to_its_feed_and_others_to_faust() -> None:
    overrides.install()
    protocol = CommitProtocol()
    app = fake_app()
    overrides.attach(app, protocol)
    feed = protocol.feed(app, TOPIC, 10)
    conductor = SimpleNamespace(app=app, _compiler=SimpleNamespace(build=lambda c, tp, channels: ("faust", tp)))
    handler = Conductor._build_handler(conductor, TP(TOPIC, 3), set())
    asyncio.run(handler(message(0, partition=3)))
    assert len(feed) == 1
    import faust.transport.conductor as conductor_mod
    if conductor_mod.ConductorHandler is None:  # the pure-Python build path: Faust's own handler
        assert Conductor._build_handler(conductor, TP("other", 0), set()) == ("faust", TP("other", 0))


def test_every_held_tracked_partition_is_committed_acked_or_not() -> None:
    """Records taken through a feed are never acked to Faust; the ledger still moves the commit."""
    overrides.install()
    ledger = CommitLedger({TOPIC: ["jobs"]})
    ledger.reset({(TOPIC, 0): 0, (TOPIC, 1): 0})
    for o in range(5):
        ledger.finish("jobs", TOPIC, 0, o)
    protocol = CommitProtocol()
    protocol.ledger = ledger
    app = SimpleNamespace(rebalancing=False)
    overrides.attach(app, protocol)
    held = [TP(TOPIC, 0), TP(TOPIC, 1), TP("untracked", 0)]
    consumer = SimpleNamespace(app=app, _acked=defaultdict(list), _acked_index=defaultdict(set), _gap={},
                               _committed_offset={TP(TOPIC, 0): 0, TP(TOPIC, 1): 0}, assignment=lambda: set(held))
    consumer._new_offset = lambda tp: Consumer._new_offset(consumer, tp)
    consumer._should_commit = lambda tp, offset: Consumer._should_commit(consumer, tp, offset)
    tps = set(Consumer._filter_tps_with_pending_acks(consumer))
    assert tps == {TP(TOPIC, 0), TP(TOPIC, 1)}  # Faust's own list (acked partitions) is empty
    assert set(Consumer._filter_tps_with_pending_acks(consumer, {TP(TOPIC, 1)})) == {TP(TOPIC, 1)}
    # partition 0 at the ledger's position; partition 1 finished nothing past where it is read from
    assert Consumer._filter_committable_offsets(consumer, tps) == {TP(TOPIC, 0): 5}
    consumer._committed_offset.update({TP(TOPIC, 0): 5, TP(TOPIC, 1): 0})
    assert Consumer._filter_committable_offsets(consumer, tps) == {}  # nothing new: no commit
    consumer._acked.clear()  # Faust's own list (its defaultdict got keys from _new_offset above)
    app.rebalancing = True  # the ledger restarts at the next seek: Faust's own list only
    assert set(Consumer._filter_tps_with_pending_acks(consumer)) == set()
    app.rebalancing = False
    del consumer._committed_offset[TP(TOPIC, 1)]  # revoked and assigned again: no seek yet
    assert set(Consumer._filter_tps_with_pending_acks(consumer)) == {TP(TOPIC, 0)}


def test_a_partition_filling_the_feed_stops_being_fetched_until_it_drains() -> None:
    """Faust's pressure rule: 80% of the feed takes the partition out of the fetch (the fetch
    loop goes on for other topics), 40% puts it back; every batch marks its partitions as
    taken for Faust's livelock check."""
    app = fake_app()
    pauses = []
    feed = Feed(TOPIC, app, 10, on_pause=lambda: pauses.append(True))

    async def main() -> list[list[int]]:
        for o in range(8):
            await fetched(feed, message(o, partition=o % 2))
        got = [[r.message.offset for r in b] for b in await take(feed, 3, 0.01, 1)]
        got += [[r.message.offset for r in b] for b in await take(feed, 2, 0.01, 1)]
        return got

    assert asyncio.run(main()) == [[0, 1, 2], [3, 4]]
    # the 8th record (partition 1) reached 80%; 3 left after the second batch: back at 40%
    assert app.calls == [("full", TP(TOPIC, 1)), ("drop", TP(TOPIC, 1))] and pauses == [True]
    assert set(app.monitor.stream_inbound_time) == {TP(TOPIC, 0), TP(TOPIC, 1)}


def test_a_full_producer_buffer_holds_the_fetch_loop_until_it_ebbs() -> None:
    app = fake_app()
    ebbed = []

    async def wait_until_ebb() -> None:
        await asyncio.sleep(0.02)
        app.producer.buffer.size = 0
        ebbed.append(True)

    app.producer.buffer = SimpleNamespace(size=101, max_messages=100, wait_until_ebb=wait_until_ebb)
    feed = running_feed(app=app)
    asyncio.run(fetched(feed, message(0)))
    assert ebbed == [True] and len(feed) == 1
