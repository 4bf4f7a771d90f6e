"""The worker's gate for JobCompleted events: one verdict per source offset.

Scoring, archiving and tallying must keep exactly the same set of jobs, across re-reads and
restarts. Past decoding and the field checks (worker/stages/triage.py, which also asks the
:class:`Catalog` about model and niche), the gate decides once per ``(partition, offset)``:

* ``ok``         the first copy of this job id: scored, stored and tallied;
* ``bad``        the image (or reference image) does not decode, or, sent by reference, cannot
                 be fetched from the object store or fails its digest check: dead-lettered;
* ``duplicate``  a re-published job (a job id already seen, same content): skipped by every
                 agent, counted in ``sentinel_duplicates_skipped_total``;
* ``conflict``   a job id already seen with *other* content: dead-lettered as
                 ``duplicate_job_id_conflict``; the first copy stays.

"Seen" means: an earlier offset this process judged ``ok`` (kept in memory), or a copy stored
in ``sentinel.jobs`` (looked up in one batched query per verdict batch, for ids not in
memory). ``jobs.completed`` is keyed by job id, so every copy of a job is in one partition, in
order, and the first agent to reach an offset has already judged every earlier offset of that
partition: verdicts are registered in log order. A re-delivered first copy (after a crash,
same partition and offset as the stored row) is recognised as itself, never as a duplicate --
and as stored: :class:`StoredOffsets` tells the archive which kept offsets already have their row,
so a job is scored and tallied again but inserted once.

Faust does not always deliver in log order: around restarts it passes records over and the
worker re-reads them after later ones (worker/delivery/overrides.py). Judged out of order, a job's
later copy became its "first" and the real first copy was dead-lettered as the conflict (seen
in a SIGKILL run). So once the worker tells the gate where each partition is read from
(:meth:`Gate.restart`, at every seek to the committed offsets), the gate judges each partition
strictly in log order: an item past an offset not judged yet is *deferred* (verdict ``None``);
the agent leaves it unfinished, and it is judged when the partition is read again from the
missing offset.

Verdicts are computed in one dedicated thread (image decoding and ClickHouse lookups never run
on the event loop, and two agents never judge concurrently); an unavailable ClickHouse makes
:meth:`Gate.screen` back off and retry instead of guessing. Both memories are bounded: the
verdict cache only has to span the distance between the fastest and the slowest agent (Faust's
per-stream buffers, a few thousand events), the job memory the distance between judging an
offset and the archive storing it; both bounds are far larger.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import sql as sql_files
from config.settings import PROJECT_ROOT
from contracts.codec import content_hash
from sentinel.validation import decode_image
from contracts.errors import InvalidEvent
from inference.catalog import known_ids
from objects.claims import image_bytes
from objects.store import ObjectStore
from worker.delivery.retry import until_done

log = logging.getLogger(__name__)

OK = "ok"
BAD = "bad"
DUPLICATE = "duplicate"
CONFLICT = "conflict"
CONFLICT_REASON = "duplicate_job_id_conflict"


@dataclass(frozen=True)
class Verdict:
    kind: str
    reason: str = ""
    detail: str = ""


OK_VERDICT = Verdict(OK)


@dataclass(frozen=True)
class StoredCopy:
    partition: int
    offset: int
    content_hash: str


# -- catalog: which models and niches the worker accepts ----------------------------------

class Catalog:
    """Known model ids and niches; ``None`` for either accepts anything."""

    def __init__(self, models: Iterable[str] | None, niches: Iterable[str] | None) -> None:
        self.models = None if models is None else frozenset(models)
        self.niches = None if niches is None else frozenset(niches)

    def check(self, event: Mapping[str, Any]) -> None:
        if self.models is not None and event["model_id"] not in self.models:
            raise InvalidEvent("unknown_model", f"model {event['model_id']!r} is not in the catalog "
                                                "(model registry, trace models, SENTINEL_KNOWN_MODELS)")
        if self.niches is not None and event["niche"] not in self.niches:
            raise InvalidEvent("unknown_niche", f"niche {event['niche']!r} is not in the catalog "
                                                "(demo and trace niches, SENTINEL_KNOWN_NICHES)")

    @classmethod
    def from_settings(cls, settings: Any) -> "Catalog":
        """Registry models + the shipped trace models + ``known_models``; demo and trace niches +
        ``known_niches``. ``*`` in either setting turns that check off."""
        registry = Path(settings.model_registry or PROJECT_ROOT / "models.toml")
        known = known_ids(registry, settings.known_models, settings.known_niches)
        return cls(known.models, known.niches)


def check_images(event: Mapping[str, Any], objects: ObjectStore | None = None) -> Pixels:
    """The decoded image and reference image (None when the job has none); InvalidEvent unless
    both decode. Images by reference are fetched from ``objects`` and their digests checked
    first (objects/claims.py). The scorer takes these pixels: each image is decoded once."""
    data, reference_data = image_bytes(event, objects)
    image = decode_image(data, event["media_type"])
    reference = decode_image(reference_data) if reference_data else None
    return image, reference


# -- which kept offsets are stored already --------------------------------------------------

Key = tuple[int, int]  # (partition, offset) of jobs.completed


class StoredOffsets:
    """Which kept source offsets already have their ``sentinel.jobs`` row, so the archive inserts
    each job once whatever the batch boundaries of a re-read (an insert dedup token only covers a
    batch retried as it was).

    Three sources: the archive's own inserts (:meth:`add`; stored stays stored), the gate's
    lookups (:meth:`note`: the stored copy of a first copy has this very partition and offset,
    or there is none), and, for a kept offset neither knows (its verdict came from the gate's
    memory), one batched lookup in :meth:`stored`. "None stored" is forgotten whenever the
    partitions are read again from the committed offsets (:meth:`restart`): meanwhile another
    worker may have owned them and stored those jobs (a lookup that started before a restart
    notes nothing absent). Bounded like the gate's memories; called from the gate's thread and
    the sink's, hence the lock.
    """

    def __init__(self, lookup: "Lookup", max_offsets: int = 200_000) -> None:
        self.lookup = lookup
        self.max_offsets = max_offsets
        self._lock = threading.Lock()
        self._stored: OrderedDict[Key, None] = OrderedDict()
        self._absent: OrderedDict[Key, None] = OrderedDict()
        self.generation = 0  # restarts so far

    def note(self, key: Key, stored: bool, generation: int | None = None) -> None:
        """What a lookup said (``generation``: :attr:`generation` when it started)."""
        self.note_many([(key, stored)], generation)

    def note_many(self, said: Iterable[tuple[Key, bool]], generation: int | None = None) -> None:
        """:meth:`note` for each (key, stored) of a batch, under one lock."""
        with self._lock:
            current = generation in (None, self.generation)
            for key, stored in said:
                if stored:
                    self._put(self._stored, key)
                    self._absent.pop(key, None)
                elif current and key not in self._stored:
                    self._put(self._absent, key)

    def add(self, keys: Iterable[Key]) -> None:
        """These offsets' rows were just inserted (the insert returned)."""
        self.note_many((key, True) for key in keys)

    def restart(self) -> None:
        with self._lock:
            self._absent.clear()
            self.generation += 1

    def stored(self, items: Sequence[tuple[int, int, str]]) -> set[Key]:
        """The keys of ``items`` ((partition, offset, job id)) whose row is stored already. May
        query the warehouse (one batched lookup) and raise when it is unavailable: retry."""
        with self._lock:
            found = {(p, o) for p, o, _ in items if (p, o) in self._stored}
            ask = [(p, o, j) for p, o, j in items if (p, o) not in self._stored and (p, o) not in self._absent]
            generation = self.generation
        copies = self.lookup(sorted({j for _, _, j in ask})) if ask else {}
        said = []
        for p, o, job_id in ask:
            copy = copies.get(job_id)
            here = copy is not None and (copy.partition, copy.offset) == (p, o)
            said.append(((p, o), here))
            if here:
                found.add((p, o))
        self.note_many(said, generation)
        return found

    def _put(self, memory: OrderedDict[Key, None], key: Key) -> None:
        memory[key] = None
        memory.move_to_end(key)
        if len(memory) > self.max_offsets:
            memory.popitem(last=False)


# -- the gate -----------------------------------------------------------------------------

# (partition, offset, decoded event -- None: rejected before the gate[, the event's content hash,
# when the caller has it already])
Item = tuple[Any, ...]
REJECTED_BEFORE = InvalidEvent("rejected", "rejected before the gate")
Lookup = Callable[[list[str]], Mapping[str, StoredCopy]]
Pixels = tuple[Any, Any]  # (image, reference image or None), decoded
T = TypeVar("T")


class Gate:
    def __init__(self, lookup: Lookup, *, executor: Executor | None = None,
                 on_duplicate: Callable[[], None] | None = None, on_retry: Callable[[], None] | None = None,
                 max_verdicts: int = 100_000, max_jobs: int = 200_000, objects: ObjectStore | None = None) -> None:
        self.lookup = lookup
        self.objects = objects  # where images by reference are fetched from (None: refused)
        self.executor = executor
        self.on_duplicate = on_duplicate
        self.on_retry = on_retry
        self.max_verdicts = max_verdicts
        self.max_jobs = max_jobs
        self._verdicts: OrderedDict[tuple[int, int], Verdict] = OrderedDict()
        self._first: OrderedDict[str, StoredCopy] = OrderedDict()  # job id -> its ok copy
        self._next: dict[int, int] = {}  # partition -> the lowest offset not judged yet (in log order)
        self.stored = StoredOffsets(lookup, max_jobs)  # what the archive may skip (its lookups feed it)

    def restart(self, starts: Mapping[int, int]) -> None:
        """Partitions are read from these offsets from now on (the committed offsets): each is
        judged in log order from there (verdicts already cached stay valid; what was not stored
        may be by now)."""
        self._next = dict(starts)
        self.stored.restart()

    def next_offset(self, partition: int) -> int | None:
        """The lowest offset of ``partition`` not judged yet (None: order not tracked)."""
        nxt = self._next.get(partition)
        if nxt is None:
            return None
        while (partition, nxt) in self._verdicts:
            nxt += 1
        self._next[partition] = nxt
        return nxt

    def cached(self, partition: int, offset: int) -> Verdict | None:
        return self._verdicts.get((partition, offset))

    def judge(self, items: Sequence[Item], decoded: dict[tuple[int, int], Pixels] | None = None
              ) -> list[Verdict | None]:
        """Verdicts for ``items``; ``None`` for an item deferred because an earlier offset of its
        partition is not judged yet. Not thread-safe: one thread only. The images decoded while
        judging go into ``decoded`` (by (partition, offset)) when given.

        Nothing is remembered unless the whole batch is judged: when the lookup fails, the
        same call can simply be repeated.
        """
        todo: dict[tuple[int, int], tuple[Mapping[str, Any], str | None, InvalidEvent | None]] = {}
        deferred: set[tuple[int, int]] = set()
        reach: dict[int, int | None] = {}  # partition -> next offset judged in order, this batch included
        for partition, offset, event, *known in sorted(items, key=lambda item: (item[0], item[1])):
            key = (partition, offset)
            if key in self._verdicts or key in todo:
                continue
            if partition not in reach:
                reach[partition] = self.next_offset(partition)
            nxt = reach[partition]
            if nxt is not None:
                if offset > nxt:
                    deferred.add(key)
                    continue
                if offset == nxt:
                    nxt += 1
                    while (partition, nxt) in self._verdicts:
                        nxt += 1
                    reach[partition] = nxt
            if event is None:  # rejected before the gate (undecodable, invalid): judged, never a copy
                todo[key] = ({}, None, REJECTED_BEFORE)
                continue
            try:
                pixels = check_images(event, self.objects)
            except InvalidEvent as exc:
                todo[key] = (event, None, exc)
                continue
            if decoded is not None:
                decoded[key] = pixels
            todo[key] = (event, known[0] if known else content_hash(event), None)
        unknown = sorted({e["job_id"] for e, h, bad in todo.values() if bad is None and e["job_id"] not in self._first})
        generation = self.stored.generation
        stored = self.lookup(unknown) if unknown else {}
        said: list[tuple[tuple[int, int], bool]] = []  # what the lookup said of first copies
        for (partition, offset), (event, digest, bad) in todo.items():  # in log order: filled sorted
            self._remember((partition, offset), self._decide(partition, offset, event, digest, bad, stored, said))
        self.stored.note_many(said, generation)
        return [None if (p, o) in deferred else self._verdicts[(p, o)] if (p, o) in self._verdicts
                else self._decide_again(p, o, e) for p, o, e, *_ in items]

    def _decide(self, partition: int, offset: int, event: Mapping[str, Any], digest: str | None,
                bad: InvalidEvent | None, stored: Mapping[str, StoredCopy], said: list) -> Verdict:
        if bad is not None:
            return Verdict(BAD, bad.reason, bad.detail)
        assert digest is not None
        job_id = event["job_id"]
        known = self._first.get(job_id)
        first = known or stored.get(job_id)
        if first is None or (first.partition, first.offset) == (partition, offset):
            if known is None:  # looked up: a re-delivered first copy is stored, a new one is not
                said.append(((partition, offset), first is not None))
                self._first[job_id] = StoredCopy(partition, offset, digest)
                if len(self._first) > self.max_jobs:
                    self._first.popitem(last=False)
            return OK_VERDICT  # one shared object: the verdict cache holds ~100k of these
        if first.content_hash == digest:
            if self.on_duplicate is not None:
                self.on_duplicate()
            return Verdict(DUPLICATE, "duplicate", f"same content as {job_id!r} at {first.partition}@{first.offset}")
        why = "other content" if first.content_hash else "a stored copy without a content hash (stored before 0005)"
        return Verdict(CONFLICT, CONFLICT_REASON,
                       f"job id {job_id!r} already used at partition {first.partition} offset {first.offset} "
                       f"with {why}; the first copy is kept")

    def _decide_again(self, partition: int, offset: int, event: Mapping[str, Any]) -> Verdict:
        # only when this very batch pushed its own verdicts out of a tiny cache
        nxt = self._next.pop(partition, None)
        try:
            verdict = self.judge([(partition, offset, event)])[0]
        finally:
            if nxt is not None:
                self._next[partition] = nxt
        assert verdict is not None
        return verdict

    def _remember(self, key: tuple[int, int], verdict: Verdict) -> None:
        self._verdicts[key] = verdict
        if len(self._verdicts) > self.max_verdicts:
            self._verdicts.popitem(last=False)

    async def screen(self, items: Sequence[Item], decoded: dict[tuple[int, int], Pixels] | None = None
                     ) -> list[Verdict | None]:
        """:meth:`judge` in the gate's executor; retried with the backoff while ClickHouse is
        unavailable (an agent must not finish events it could not judge)."""
        if not items:
            return []
        items = list(items)
        return await self.run(lambda: self.judge(items, decoded))

    async def run(self, work: Callable[[], T]) -> T:
        """``work`` (which judges) in the gate's executor; retried with the backoff while
        ClickHouse is unavailable."""
        loop = asyncio.get_running_loop()
        return await until_done(lambda: loop.run_in_executor(self.executor, work), "duplicate check", self.on_retry)


def stored_copies(warehouse: Any, job_ids: list[str]) -> dict[str, StoredCopy]:
    """The lookup the worker uses: ``sql/reports/stored_copies.sql``, chunked."""
    query = sql_files.report("stored_copies")
    out: dict[str, StoredCopy] = {}
    for start in range(0, len(job_ids), 5000):
        table = warehouse.query(query, {"job_ids": job_ids[start:start + 5000]})
        for row in table.to_pylist():
            out[row["job_id"]] = StoredCopy(int(row["source_partition"]), int(row["source_offset"]),
                                            row["content_hash"])
    return out
