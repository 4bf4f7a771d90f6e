"""Every change this worker makes to faust-streaming and aiokafka, and every private attribute
it reads, in one module, with a check at start that each still has the shape expected.

Patched (once per process, :func:`install`):

1. ``faust.transport.consumer.Consumer._new_offset``: a partition of a topic with a commit
   protocol (worker/delivery/commit.py) is committed only up to what every reader finished
   (the ledger), never by Faust's acks or its fetcher's "gaps" (both committed records no agent
   had processed: docs/delivery.md).
2. ``Consumer.perform_seek``: after Faust seeks to the committed offsets, a partition with no
   committed offset is sought to its earliest offset (aiokafka leaves it at its fetch position,
   past records Faust dropped), and the protocol restarts there (ledger, gate order).
3. ``aiokafka.consumer.fetcher.Fetcher._proc_fetch_request``: waits out up to 20 ms after an
   empty fetch (noida-db answers empty fetches at once; an idle worker burned 0.9 cores).
4. ``aiokafka.consumer.group_coordinator.CoordinatorGroupRebalance.perform_group_join``: a
   SyncGroup answer with zero assignment bytes means "join again" (noida-db sent one to a worker
   starting next to another under load; aiokafka's decode raised and its coordinator routine
   died, leaving the worker up without partitions and the group rebalancing around it).
5. ``Consumer.wait_first`` (mode's, which Faust's fetch loop awaits once per record to hand it
   to the agents' channels unless the flow stops first): the first coroutine runs one step
   before any task is made, and a record whose hand-over did not wait (the channel had room,
   nearly always) is done there. Mode made four tasks and two loop turns per record, and each
   turn waits for the GIL while the gate's thread holds it: the fetch loop, not the stages, set
   the metadata path's pace. A hand-over that waits goes on as mode's ``wait_first`` would.
6. ``faust.topics.Topic._get_producer``: the app's producer at once when it is started. Faust's
   awaits ``app.maybe_start_producer``, a ``stampede`` (a future and three loop turns per call),
   for every record a topic sends, changelog writes included, so the producer's sender ran
   between records: 500 records left in about 190 produce requests instead of 13 (noida-db).
7. ``faust.transport.conductor.Conductor._build_handler``: a topic with a feed (worker/delivery/feed.py)
   gets the feed's callback for its partitions instead of Faust's channel hand-over.
8. ``Consumer._filter_tps_with_pending_acks``: every held partition the ledger tracks is
   committed, acked or not (records taken through a feed are never acked to Faust); not during
   a rebalance, and only once the partition has a committed offset (set at every seek).

Read, not patched: ``Consumer._committed_offset`` (also by worker/membership.py: the consumer lag), ``_acked``,
``_acked_index``, ``_gap``, ``_paused_partitions``; the ``faust.streams._current_event`` context
variable (table writes go to the changelog partition of the current event); the aiokafka consumer
behind Faust's consumer thread (``_thread._ensure_consumer()``), for its public
``partitions_for_topic`` (Faust's own ``topic_partitions`` answers only on the group leader).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import time
import weakref
from typing import Any, Awaitable, Callable, Coroutine, Generator

import aiokafka
import faust
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance
from faust.streams import _current_event
from faust.topics import Topic
from faust.transport.conductor import Conductor
from faust.transport.consumer import Consumer
from mode.services import WaitResults

log = logging.getLogger(__name__)

EMPTY_FETCH_WAIT_S = 0.02

# (module, class or None, attribute, parameter names of a callable or None for "exists")
EXPECTED: tuple[tuple[str, str | None, str, tuple[str, ...] | None], ...] = (
    ("faust.transport.consumer", "Consumer", "perform_seek", ("self",)),
    ("faust.transport.consumer", "Consumer", "_new_offset", ("self", "tp")),
    ("faust.transport.consumer", "Consumer", "_is_changelog_tp", ("self", "tp")),
    ("faust.transport.consumer", "Consumer", "earliest_offsets", None),
    ("faust.transport.consumer", "Consumer", "highwaters", None),
    ("faust.transport.consumer", "Consumer", "seek", None),
    ("faust.transport.consumer", "Consumer", "resume_partitions", None),
    ("aiokafka.consumer.fetcher", "Fetcher", "_proc_fetch_request", ("self", "assignment", "node_id", "request")),
    ("aiokafka.consumer.group_coordinator", "CoordinatorGroupRebalance", "perform_group_join", ("self",)),
    ("faust.streams", None, "_current_event", None),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "_ensure_consumer", ("self",)),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "partitions_for_topic", ("self", "topic")),
    ("faust.transport.consumer", "Consumer", "wait_first", ("self", "coros", "timeout")),
    ("mode.services", None, "WaitResults", None),
    ("faust.topics", "Topic", "_get_producer", ("self",)),
    ("faust.app.base", "App", "in_transaction", None),
    ("mode.services", "Service", "started", None),
    ("faust.transport.conductor", "Conductor", "_build_handler", ("self", "tp", "channels")),
    ("faust.transport.consumer", "Consumer", "_filter_tps_with_pending_acks", ("self", "topics")),
    ("faust.transport.consumer", "Consumer", "assignment", ("self",)),
    ("mode.utils.queues", "FlowControlEvent", "manage_queue", ("self", "queue")),
    ("faust.transport.consumer", "Consumer", "on_buffer_full", ("self", "tp")),
    ("faust.transport.consumer", "Consumer", "on_buffer_drop", ("self", "tp")),
    ("faust.transport.producer", "ProducerBuffer", "wait_until_ebb", ("self",)),
    ("faust.transport.producer", "ProducerBuffer", "size", None),
    ("faust.sensors.monitor", "Monitor", "stream_inbound_time", None),
)
# instance attributes of a live Consumer (checked on the first consumer that seeks)
CONSUMER_ATTRS = ("_committed_offset", "_acked", "_acked_index", "_gap", "_paused_partitions", "app", "_thread",
                  "_stopped", "_crashed")

_PROTOCOLS: dict[int, Any] = {}  # id(app) -> its CommitProtocol
_INSTALLED = False
_CONSUMER_CHECKED = False


class FaustShapeError(RuntimeError):
    """faust-streaming or aiokafka changed under a patch: refuse to run with a clear message."""


def _versions() -> str:
    return f"faust-streaming {faust.__version__}, aiokafka {aiokafka.__version__}"


def check_shape() -> None:
    """Raise FaustShapeError naming every patched or read attribute that is missing or whose
    parameters changed."""
    problems = []
    for module, owner, name, params in EXPECTED:
        where = f"{module}.{owner + '.' if owner else ''}{name}"
        obj: Any = importlib.import_module(module)
        if owner is not None:
            obj = getattr(obj, owner, None)
        if obj is None or not hasattr(obj, name):
            problems.append(f"{where} is missing")
            continue
        if params is not None:
            found = tuple(inspect.signature(getattr(obj, name)).parameters)
            if found[:len(params)] != params:
                problems.append(f"{where} takes {found}, expected {params}")
    if problems:
        raise FaustShapeError(f"this worker patches {_versions()} and cannot run on it: " + "; ".join(problems)
                              + " (see worker/delivery/overrides.py)")


def check_consumer(consumer: Any) -> None:
    global _CONSUMER_CHECKED
    if _CONSUMER_CHECKED:
        return
    missing = [name for name in CONSUMER_ATTRS if not hasattr(consumer, name)]
    if missing:
        raise FaustShapeError(f"{_versions()}: the consumer has no {', '.join(missing)} "
                              "(see worker/delivery/overrides.py)")
    _CONSUMER_CHECKED = True


def attach(app: Any, protocol: Any) -> None:
    """Commits of ``app``'s consumer follow ``protocol`` (ledger, reset hooks) from now on."""
    _PROTOCOLS[id(app)] = protocol


def protocol_of(app: Any) -> Any:
    return _PROTOCOLS.get(id(app))


# -- reads of private state ----------------------------------------------------------------

def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The consumer's committed offset of ``tp`` (None: none yet, or no consumer)."""
    return consumer._committed_offset.get(tp) if consumer is not None else None


def topic_partition_count(consumer: Any, topic: str) -> int | None:
    """How many partitions ``topic`` has in the consumer's cluster metadata (None: not known yet,
    or no consumer). A read of a dict the consumer thread updates, as Faust's ``highwater`` does."""
    thread = getattr(consumer, "_thread", None) if consumer is not None else None
    if thread is None:
        return None
    partitions = thread._ensure_consumer().partitions_for_topic(topic)
    return len(partitions) if partitions else None


def is_paused(consumer: Any, tp: Any) -> bool:
    return tp in consumer._paused_partitions


def make_current(event: Any) -> None:
    """Make ``event`` Faust's current event in this task, as ``Stream.events()`` does per event,
    so table writes go to its partition's changelog. Only the context variable: the stream's
    own ``current_event`` attribute is ``take_events``' bookkeeping and must not be touched."""
    _current_event.set(weakref.ref(event))


# -- the patches -----------------------------------------------------------------------------

def waiting_after_empty(fetch: Callable[..., Awaitable[bool]], wait_s: float) -> Callable[..., Awaitable[bool]]:
    """Wrap ``Fetcher._proc_fetch_request``: after a fetch that brought nothing back sooner than
    ``fetch_max_wait_ms``, wait out the rest (at most ``wait_s``). A broker that long-polls
    (Kafka) answers an empty fetch only after ``fetch_max_wait_ms``: nothing changes there."""

    async def proc_fetch_request(self: Any, assignment: Any, node_id: Any, request: Any) -> bool:
        started = time.monotonic()
        has_new_data = await fetch(self, assignment, node_id, request)
        if not has_new_data:
            wait = min(self._fetch_max_wait_ms / 1000, wait_s) - (time.monotonic() - started)
            if wait > 0:
                try:
                    await asyncio.sleep(wait)
                except asyncio.CancelledError:  # Fetcher.close() awaits its cancelled fetch tasks
                    return False  # unguarded; the original also returns False when cancelled
        return has_new_data

    proc_fetch_request.__wrapped__ = fetch  # type: ignore[attr-defined]
    return proc_fetch_request


def retrying_empty_assignment(join: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """Wrap ``CoordinatorGroupRebalance.perform_group_join`` (returns ``(protocol, assignment
    bytes)`` or None, which aiokafka retries after its backoff): zero bytes become None. An
    encoded assignment is never empty, even one without partitions, so zero bytes are a broker
    that answered before the leader had assigned, not an assignment."""

    async def perform_group_join(self: Any) -> Any:
        joined = await join(self)
        if joined is not None and not joined[1]:
            log.warning("group %s: the coordinator answered with no assignment at all; joining again", self.group_id)
            return None
        return joined

    perform_group_join.__wrapped__ = join  # type: ignore[attr-defined]
    return perform_group_join


async def _rewind_uncommitted(consumer: Any) -> None:
    uncommitted = [tp for tp in consumer.assignment()
                   if not consumer._is_changelog_tp(tp) and consumer._committed_offset.get(tp) is None]
    if not uncommitted:
        return
    earliest = await consumer.earliest_offsets(*uncommitted)
    for tp, offset in earliest.items():
        await consumer.seek(tp, offset)
        consumer._committed_offset[tp] = offset  # where the first commit must start; not sent to the broker
    log.info("no committed offset for %s: rewound to the earliest offsets",
             sorted(f"{tp.topic}[{tp.partition}]" for tp in uncommitted))


def _forget_acks_below(consumer: Any, tp: Any, offset: int) -> None:
    """Faust's own ack bookkeeping, unused here: keep it bounded."""
    acked = consumer._acked[tp]
    passed = [o for o in acked if o < offset]
    if passed:
        acked[:] = [o for o in acked if o >= offset]
        consumer._acked_index[tp].difference_update(passed)
    gaps = consumer._gap.get(tp)
    if gaps:
        gaps.chop(0, offset)


class _Rest:
    """Awaiting this finishes ``coro``, a coroutine already run one step that yielded
    ``waiting`` (the future it waits on, or None for a bare yield), as the task awaiting this."""

    __slots__ = ("coro", "waiting", "blocking")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting
        # a future yielded by ``await`` is flagged for the task that gets it; until this one
        # runs, the flag is cleared so that another task awaiting the same future is not refused
        self.blocking = bool(getattr(waiting, "_asyncio_future_blocking", False))
        if self.blocking:
            waiting._asyncio_future_blocking = False

    def __await__(self) -> Generator[Any, Any, Any]:
        waiting = self.waiting
        if self.blocking:
            waiting._asyncio_future_blocking = True
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                self.coro.close()
                raise
            except BaseException as exc:  # thrown in by the task driving this (its cancellation)
                step, arg = self.coro.throw, exc
            else:
                step, arg = self.coro.send, sent
            try:
                waiting = step(arg)
            except StopIteration as stop:
                return stop.value


async def _finish(rest: _Rest) -> Any:
    return await rest


def stepping_first(wait_first: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap mode's ``Service.wait_first(*coros, timeout)``: the first coroutine runs one step
    first; finished, it is the winner and the other coroutines are closed unstarted, else mode's
    ``wait_first`` races its rest against them. A stopped or crashed service answers "stopped",
    as mode does."""

    async def wait_first_stepped(self: Any, *coros: Any, timeout: Any = None) -> Any:
        first = coros[0] if coros else None
        if not inspect.iscoroutine(first):
            return await wait_first(self, *coros, timeout=timeout)
        try:
            waiting = first.send(None)
        except BaseException as exc:
            for other in coros[1:]:
                if inspect.iscoroutine(other):
                    other.close()
            if isinstance(exc, StopIteration):
                if self._stopped.is_set() or self._crashed.is_set():
                    return WaitResults([], [], True)
                return WaitResults([first], [exc.value], False)
            raise
        return await wait_first(self, _finish(_Rest(first, waiting)), *coros[1:], timeout=timeout)

    wait_first_stepped.__wrapped__ = wait_first  # type: ignore[attr-defined]
    return wait_first_stepped


def started_producer(get_producer: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """Patch 6 (module docstring): skip ``maybe_start_producer`` once the producer runs."""

    async def _get_producer(self: Any) -> Any:
        app = self.app
        producer = app.producer
        if producer.started and not app.in_transaction:
            return producer
        return await get_producer(self)

    return _get_producer


def feeding(build: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``Conductor._build_handler``: the records of a topic with a feed go to the feed."""
    @functools.wraps(build)
    def _build_handler(self: Any, tp: Any, channels: Any) -> Any:
        protocol = protocol_of(self.app)
        feed = protocol.feeds.get(tp.topic) if protocol is not None else None
        return feed.handler(tp) if feed is not None else build(self, tp, channels)
    return _build_handler


def committing_tracked(filter_tps: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``Consumer._filter_tps_with_pending_acks`` (the partitions Faust's commit looks at):
    add every held partition the ledger tracks, which ``_new_offset`` answers from the ledger."""
    @functools.wraps(filter_tps)
    def _filter_tps_with_pending_acks(self: Any, topics: Any = None) -> Any:
        found = list(filter_tps(self, topics))
        protocol = protocol_of(self.app)
        if protocol is not None and not self.app.rebalancing:
            # after the seek to the committed offsets (the ledger's starts); a revoked partition
            # loses its committed offset, so one the ledger no longer speaks for is left out
            seen = set(found)
            found += [tp for tp in self.assignment() if tp not in seen and protocol.tracks(tp.topic)
                      and self._committed_offset.get(tp) is not None
                      and (topics is None or tp in topics or tp.topic in topics)]
        return iter(found)
    return _filter_tps_with_pending_acks


def install() -> None:
    """Check the shapes, then apply the eight patches (once per process)."""
    global _INSTALLED
    if _INSTALLED:
        return
    check_shape()
    Fetcher._proc_fetch_request = waiting_after_empty(Fetcher._proc_fetch_request,  # type: ignore[method-assign]
                                                      EMPTY_FETCH_WAIT_S)
    CoordinatorGroupRebalance.perform_group_join = retrying_empty_assignment(  # type: ignore[method-assign]
        CoordinatorGroupRebalance.perform_group_join)
    original_seek = Consumer.perform_seek
    original_new_offset = Consumer._new_offset

    async def perform_seek(self: Any) -> None:
        check_consumer(self)
        await original_seek(self)
        await _rewind_uncommitted(self)
        protocol = protocol_of(self.app)
        if protocol is not None:
            protocol.restart({(tp.topic, tp.partition): self._committed_offset.get(tp) or 0
                              for tp in self.assignment() if protocol.tracks(tp.topic)})

    def _new_offset(self: Any, tp: Any) -> int | None:
        protocol = protocol_of(self.app)
        if protocol is None or not protocol.tracks(tp.topic):
            return original_new_offset(self, tp)
        offset = protocol.committable(tp.topic, tp.partition)
        if offset is not None:
            _forget_acks_below(self, tp, offset)
        return offset

    perform_seek.__doc__ = original_seek.__doc__
    Consumer.wait_first = stepping_first(Consumer.wait_first)  # type: ignore[method-assign]
    Topic._get_producer = started_producer(Topic._get_producer)  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Conductor._build_handler = feeding(Conductor._build_handler)  # type: ignore[method-assign]
    Consumer._filter_tps_with_pending_acks = committing_tracked(  # type: ignore[method-assign]
        Consumer._filter_tps_with_pending_acks)
    _INSTALLED = True
