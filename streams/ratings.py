"""Blind pairwise human ratings: import, storage, the rating page, and counts for Bradley–Terry.

A rating says: a rater saw the outputs of two jobs for the same prompt and niche, from two
different models whose names were hidden, ``job_a`` shown first (left), and picked ``a``, ``b``
or ``tie``. Ratings travel as ``PairwiseRating`` Avro records on ``ratings.pairwise`` (key =
rating id) and are stored in ``sentinel.ratings``:

    sentinel ratings import FILE --> ratings.pairwise --store_ratings--> sentinel.ratings
    /sentinel/rate/ (blind A/B page) ----^        undecodable/invalid --> ratings.pairwise.dlq

Storage is idempotent like every sink: ReplacingMergeTree by ``rating_id`` (importing a file
twice leaves one row per rating under FINAL) plus an insert dedup token from the source offsets
(a retried batch is a no-op). :func:`pairwise_counts` turns the stored ratings of a window into
the :class:`sentinel.human.PairwiseCounts` that the Bradley–Terry fit takes.

The rating page (``GET /sentinel/rate/?token=...&rater=...``, token as query parameter, the
``X-Sentinel-Token`` header or ``Authorization: Bearer``) shows one pair at a time. It takes the
worker's token or the rater token derived from it (:func:`rater_token`, what ``sentinel ratings
url`` prints), which opens the page but not the read-only SQL view. Scheduling:
the model pair with the fewest stored ratings among those that have an unrated candidate job
pair (same niche and prompt), ties broken at random; the two jobs go left/right at random. The
page carries only a random pair id: which job is A and B lives in the worker's memory (so
neither model names nor job ids reach the browser), and a pair id is good for one answer.
With several workers, a rater must stay on the worker that served the page.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import math
import random
import secrets
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import pyarrow as pa

import sql as sql_files
from sentinel.human import PairwiseCounts
from sentinel.validation import InvalidEvent

if TYPE_CHECKING:  # streams.report imports this module; no import cycle at run time
    import faust

    from streams.report import Window
    from streams.warehouse import Warehouse

log = logging.getLogger(__name__)

RATINGS = "ratings.pairwise"
WINNERS = ("a", "b", "tie")
SIMULATED_PREFIX = "sim-"
DEFAULT_RATER = "anonymous"
MAX_ID_LEN = 200
# JSON Lines fields of `sentinel ratings import`; `time` becomes the record's rated_at.
IMPORT_FIELDS = ("rating_id", "job_a", "job_b", "winner", "rater", "time")
PAGE = Path(__file__).resolve().parent / "rate.html"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=timezone.utc)
TS = pa.timestamp("ms", tz="UTC")
RATINGS_SCHEMA = pa.schema([
    ("rating_id", pa.string()),
    ("job_a", pa.string()),
    ("job_b", pa.string()),
    ("winner", pa.string()),
    ("rater", pa.string()),
    ("rated_at", TS),
    ("source_partition", pa.uint32()),
    ("source_offset", pa.uint64()),
])


# -- validation -----------------------------------------------------------------------------

def check_rating(record: Mapping[str, Any]) -> None:
    """What Avro's types cannot say about a decoded PairwiseRating; raises InvalidEvent."""
    for name in ("rating_id", "job_a", "job_b", "rater"):
        value = record.get(name)
        if not value or not str(value).strip():
            raise InvalidEvent("invalid_rating", f"empty {name}")
        if len(value) > MAX_ID_LEN:
            raise InvalidEvent("invalid_rating", f"{name} longer than {MAX_ID_LEN} characters")
    if record["job_a"] == record["job_b"]:
        raise InvalidEvent("invalid_rating", f"job_a and job_b are the same job ({record['job_a']!r})")
    if record.get("winner") not in WINNERS:
        raise InvalidEvent("invalid_rating", f"winner {record.get('winner')!r} is not one of a, b, tie")


@dataclass(frozen=True)
class RatingError:
    """One rejected line of a ratings file."""

    line: int
    rating_id: str | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _parse_time(value: Any) -> tuple[datetime | None, str | None]:
    if isinstance(value, bool):
        return None, f"time must be an ISO-8601 string or epoch milliseconds, got {value!r}"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return None, f"time {value!r} is not a whole number of epoch milliseconds"
        try:
            return _EPOCH + timedelta(milliseconds=int(value)), None
        except OverflowError:
            return None, f"time {value!r} is out of range for epoch milliseconds"
    if not isinstance(value, str):
        return None, f"time must be an ISO-8601 string or epoch milliseconds, got {type(value).__name__}"
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        return None, f"time {value!r} is not an ISO-8601 time or epoch milliseconds"
    if ts.tzinfo is None:
        return None, f"time {value!r} has no time zone (write UTC, e.g. '2026-01-01T09:00:00.000Z')"
    ts = ts.astimezone(timezone.utc)
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000), None


def parse_rating(raw: Any) -> dict[str, Any]:
    """A PairwiseRating record from one import row (a JSON object with IMPORT_FIELDS), or
    ValueError listing every problem found ("; "-joined)."""
    if not isinstance(raw, dict):
        raise ValueError(f"a rating must be a JSON object, got {type(raw).__name__}")
    missing = [name for name in IMPORT_FIELDS if raw.get(name) is None]
    if missing:
        absent = [n for n in missing if n not in raw]
        null = [n for n in missing if n in raw]
        problems = []
        if absent:
            problems.append(f"missing field{'s' if len(absent) > 1 else ''}: {', '.join(absent)}")
        if null:
            problems.append(f"null field{'s' if len(null) > 1 else ''}: {', '.join(null)}")
        raise ValueError("; ".join(problems))
    problems = []
    for name in ("rating_id", "job_a", "job_b", "rater"):
        value = raw[name]
        if not isinstance(value, str):
            problems.append(f"{name} must be a string, got {type(value).__name__}")
        elif not value.strip():
            problems.append(f"{name} is empty")
        elif len(value) > MAX_ID_LEN:
            problems.append(f"{name} is longer than {MAX_ID_LEN} characters")
    if not problems and raw["job_a"] == raw["job_b"]:
        problems.append(f"job_a and job_b are the same job ({raw['job_a']!r})")
    if raw["winner"] not in WINNERS:
        problems.append(f"winner {raw['winner']!r} is not one of a, b, tie")
    rated_at, problem = _parse_time(raw["time"])
    if problem:
        problems.append(problem)
    if problems:
        raise ValueError("; ".join(problems))
    return {"rating_id": raw["rating_id"], "job_a": raw["job_a"], "job_b": raw["job_b"], "winner": raw["winner"],
            "rater": raw["rater"], "rated_at": rated_at}


def parse_ratings(lines: Iterable[str | bytes]) -> tuple[list[dict[str, Any]], list[RatingError]]:
    """Records of every good line and one RatingError (1-based line number) per bad line.
    Blank lines are skipped (they still count as lines); a rating_id seen before is an error."""
    records: list[dict[str, Any]] = []
    errors: list[RatingError] = []
    seen: dict[str, int] = {}
    unknown: set[str] = set()
    for line_no, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                errors.append(RatingError(line_no, None, "not UTF-8 text"))
                continue
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RatingError(line_no, None, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        rating_id = raw.get("rating_id") if isinstance(raw, dict) and isinstance(raw.get("rating_id"), str) else None
        try:
            record = parse_rating(raw)
        except ValueError as exc:
            errors.append(RatingError(line_no, rating_id, str(exc)))
            continue
        unknown.update(set(raw) - set(IMPORT_FIELDS))
        if record["rating_id"] in seen:
            errors.append(RatingError(line_no, record["rating_id"], f"duplicate rating_id {record['rating_id']!r} "
                                                                   f"(first seen on line {seen[record['rating_id']]})"))
            continue
        seen[record["rating_id"]] = line_no
        records.append(record)
    if unknown:
        log.warning("ignored unknown rating field(s) %s", sorted(unknown))
    return records, errors


def read_ratings_file(path: Path) -> tuple[list[dict[str, Any]], list[RatingError]]:
    """:func:`parse_ratings` of a JSON Lines file."""
    with Path(path).open("rb") as fh:
        return parse_ratings(fh)


# -- publishing -----------------------------------------------------------------------------

async def publish_ratings(bootstrap: str, records: Sequence[Mapping[str, Any]], *, topic: str = RATINGS) -> int:
    """Publish PairwiseRating records (key = rating_id); returns how many were acknowledged."""
    from aiokafka import AIOKafkaProducer

    from schemas.codec import AvroCodec

    codec = AvroCodec("PairwiseRating")
    payloads = [(r["rating_id"].encode(), codec.encode(dict(r))) for r in records]  # encode all before sending
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in payloads]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(payloads)


@dataclass
class ImportResult:
    published: int
    errors: list[RatingError] = field(default_factory=list)


def import_ratings(bootstrap: str, path: Path, *, skip_invalid: bool = False) -> ImportResult:
    """Validate a ratings JSON Lines file and publish it to ratings.pairwise.

    All or nothing by default: if any line is invalid nothing is published (``published == 0``,
    the errors say why). ``skip_invalid=True`` publishes the good lines and reports the rest.
    """
    records, errors = read_ratings_file(path)
    if errors and not skip_invalid:
        return ImportResult(0, errors)
    published = asyncio.run(publish_ratings(bootstrap, records)) if records else 0
    return ImportResult(published, errors)


# -- storage --------------------------------------------------------------------------------

def rating_rows(items: Sequence[tuple[Mapping[str, Any], int, int]]) -> pa.Table:
    """``items``: (decoded PairwiseRating, source partition, source offset)."""
    cols: dict[str, list] = {f.name: [] for f in RATINGS_SCHEMA}
    for record, partition, offset in items:
        for name in ("rating_id", "job_a", "job_b", "winner", "rater", "rated_at"):
            cols[name].append(record[name])
        cols["source_partition"].append(partition)
        cols["source_offset"].append(offset)
    return pa.table(cols, schema=RATINGS_SCHEMA)


# -- counts for the Bradley–Terry fit ------------------------------------------------------

def _all_time() -> dict[str, str]:
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    return {"start": _EPOCH.strftime(fmt)[:-3], "end": _FAR_FUTURE.strftime(fmt)[:-3]}


def pairwise_counts(reader: "Warehouse", window: "Window | None" = None) -> tuple[PairwiseCounts, dict[str, Any]]:
    """Stored ratings whose two jobs were both requested in ``window`` (all time if None), as
    PairwiseCounts per ordered (model shown as a, model shown as b), and a summary:

    ``ratings`` (counted), ``raters`` (distinct), ``human_raters`` (ids not starting with
    "sim-"), ``simulated`` (True when there are ratings and every rater id starts with "sim-"),
    ``model_pairs`` (ordered pairs with ratings). Ratings of two jobs of the same model and
    ratings naming a job not stored are not counted.
    """
    params = window.params() if window is not None else _all_time()
    counts = PairwiseCounts()
    info: dict[str, Any] = {"ratings": 0, "raters": 0, "human_raters": 0, "simulated": False, "model_pairs": 0}
    for row in reader.query(sql_files.report("pairwise_counts"), params).to_pylist():
        if row["is_total"]:
            info.update(ratings=int(row["ratings"]), raters=int(row["raters"]), human_raters=int(row["human_raters"]))
        else:
            counts.pairs[(row["model_a"], row["model_b"])] = [int(row["a_wins"]), int(row["b_wins"]), int(row["ties"])]
    info["model_pairs"] = len(counts.pairs)
    info["simulated"] = info["ratings"] > 0 and info["human_raters"] == 0
    return counts, info


# -- scheduling pairs for the rating page -------------------------------------------------

def pair_key(job_1: str, job_2: str) -> str:
    """Order-free key of a job pair, as rating_candidates.sql spells it."""
    lo, hi = sorted((job_1, job_2))
    return f"{lo}|{hi}"


def choose_candidate(candidates: Sequence[Mapping[str, Any]], rated: Mapping[tuple[str, str], int],
                     rng: random.Random) -> Mapping[str, Any] | None:
    """The model pair with the fewest ratings (``rated``: (model_1, model_2), model_1 < model_2)
    among those with a candidate, ties at random; then one of its candidates at random."""
    by_pair: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for c in candidates:
        by_pair.setdefault((c["model_1"], c["model_2"]), []).append(c)
    if not by_pair:
        return None
    fewest = min(rated.get(p, 0) for p in by_pair)
    pair = rng.choice(sorted(p for p in by_pair if rated.get(p, 0) == fewest))
    return rng.choice(by_pair[pair])


def rated_per_model_pair(counts: PairwiseCounts) -> dict[tuple[str, str], int]:
    return {pair: sum(v) for pair, v in counts.unordered().items()}


def next_pair(warehouse: "Warehouse", exclude: Sequence[str], rng: random.Random, *,
              per_group: int = 3, per_model_pair: int = 20) -> Mapping[str, Any] | None:
    """One candidate (job_1, job_2, model_1, model_2, niche, prompt) by the scheduling rule,
    leaving out job pairs in ``exclude`` (pair_key form); None when nothing is left to rate."""
    counts, _ = pairwise_counts(warehouse, None)
    candidates = warehouse.query(sql_files.report("rating_candidates"), {
        "seed": rng.getrandbits(63), "per_group": per_group, "per_model_pair": per_model_pair,
        "exclude": list(exclude)}).to_pylist()
    return choose_candidate(candidates, rated_per_model_pair(counts), rng)


@dataclass(frozen=True)
class Pair:
    pair_id: str
    job_a: str
    job_b: str
    niche: str
    prompt: str
    issued_at: float


class PairBook:
    """Pairs shown and not yet answered (server-side: the page only has the random pair id;
    answerable for ``ttl_s``), and which job pairs to leave out of scheduling: those shown in
    the last ``recent_s`` seconds and not answered (another rater gets another pair) and those
    answered in the last ``recent_s`` (until the rating is stored and the SQL sees it)."""

    def __init__(self, *, max_pairs: int = 10_000, ttl_s: float = 86_400.0, recent_s: float = 600.0) -> None:
        self.max_pairs = max_pairs
        self.ttl_s = ttl_s
        self.recent_s = recent_s
        self.open: OrderedDict[str, Pair] = OrderedDict()
        self.recent: OrderedDict[str, float] = OrderedDict()  # pair_key -> answered at

    def _expire(self, now: float) -> None:
        while self.open and (len(self.open) > self.max_pairs or
                             next(iter(self.open.values())).issued_at < now - self.ttl_s):
            self.open.popitem(last=False)
        while self.recent and (len(self.recent) > self.max_pairs or next(iter(self.recent.values())) < now - self.recent_s):
            self.recent.popitem(last=False)

    def issue(self, job_a: str, job_b: str, niche: str, prompt: str, now: float | None = None) -> Pair:
        now = time.time() if now is None else now
        pair = Pair(secrets.token_urlsafe(18), job_a, job_b, niche, prompt, now)
        self.open[pair.pair_id] = pair
        self._expire(now)
        return pair

    def get(self, pair_id: str) -> Pair | None:
        return self.open.get(pair_id)

    def answer(self, pair_id: str, now: float | None = None) -> Pair | None:
        """Close a pair (one answer per pair id); None if unknown, expired or answered."""
        now = time.time() if now is None else now
        pair = self.open.pop(pair_id, None)
        if pair is not None:
            self.recent[pair_key(pair.job_a, pair.job_b)] = now
        self._expire(now)
        return pair

    def exclude(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        self._expire(now)
        shown = {pair_key(p.job_a, p.job_b) for p in self.open.values() if p.issued_at >= now - self.recent_s}
        return sorted(shown | set(self.recent))


# -- the worker side: agent and pages ------------------------------------------------------

def _given_token(request: Any) -> str:
    auth = request.headers.get("Authorization", "")
    return (request.query.get("token") or request.headers.get("X-Sentinel-Token")
            or (auth[len("Bearer "):] if auth.startswith("Bearer ") else ""))


def rater_token(token: str) -> str:
    """The token to give raters: derived from the worker's token, it opens the rating page but
    not ``/sentinel/query`` (where a rater could look up which model made which job)."""
    return hmac.new(token.encode(), b"sentinel/rate", hashlib.sha256).hexdigest()[:32]


def check_token(expected: str, given: str) -> tuple[int, str] | None:
    """None when ``given`` is the worker's token or its :func:`rater_token`, else (HTTP status,
    message): 401 without a token, 403 with a wrong one (or when the worker has no token
    configured: the page is then off)."""
    if not expected:
        return 403, "the rating page is off: this worker has no token (set SENTINEL_QUERY_TOKEN)"
    if not given:
        return 401, "missing token (?token=... or the X-Sentinel-Token header)"
    if not any(hmac.compare_digest(given.encode(), ok.encode()) for ok in (expected, rater_token(expected))):
        return 403, "wrong token"
    return None


def _clean_rater(value: str | None) -> str:
    rater = (value or "").strip()[:MAX_ID_LEN]
    return rater or DEFAULT_RATER


def render_page(*, pair: Pair | None, token: str, rater: str, notice: str = "") -> str:
    """The self-contained A/B page: the prompt and niche, two images (A left, B right) and three
    buttons. It names no model and no job: only the pair id the worker issued."""
    query = {"token": token, "rater": rater}
    if pair is None:
        body = ('<p class="empty">Nothing to rate right now: every pair of outputs with the same prompt '
                'and niche from two different models has been rated. '
                f'<a href="./?{html.escape(urllib.parse.urlencode(query))}">Check again</a>.</p>')
    else:
        def img(slot: str) -> str:
            src = "image/?" + urllib.parse.urlencode({"pair": pair.pair_id, "slot": slot, "token": token})
            return (f'<figure><img id="image-{slot}" src="{html.escape(src)}" alt="output {slot.upper()}">'
                    f'<figcaption>{slot.upper()}</figcaption></figure>')

        body = Template(
            '<p class="prompt"><span class="niche">$niche</span> $prompt</p>\n'
            '<div class="pair">$img_a$img_b</div>\n'
            '<form method="post" action="./?$action">\n'
            '<input type="hidden" name="pair" value="$pair_id">\n'
            '<input type="hidden" name="rater" value="$rater">\n'
            '<button id="choose-a" name="choice" value="a" accesskey="a">A is better</button>\n'
            '<button id="choose-tie" name="choice" value="tie" accesskey="t">About the same</button>\n'
            '<button id="choose-b" name="choice" value="b" accesskey="b">B is better</button>\n'
            '</form>').substitute(
                niche=html.escape(pair.niche), prompt=html.escape(pair.prompt), img_a=img("a"), img_b=img("b"),
                action=html.escape(urllib.parse.urlencode(query)), pair_id=html.escape(pair.pair_id),
                rater=html.escape(rater))
    return Template(PAGE.read_text()).substitute(
        rater=html.escape(rater), notice=f'<p class="notice">{html.escape(notice)}</p>' if notice else "",
        body=body)


def register_ratings(app: "faust.App", settings: Any, rt: Callable[[], Any],
                     dead_letter: Callable[..., Any]) -> None:
    """The ratings topic, its store agent (dead letters to ratings.pairwise.dlq via
    ``dead_letter(topic, source, Rejected)``) and the token-protected rating page."""
    import faust

    from schemas.codec import DecodeError
    from streams import codecs
    from streams.app import Rejected, dedup_token, dlq_name, finished, write_until_stored

    ratings_in = app.topic(RATINGS, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    ratings_out = app.topic(RATINGS, key_serializer="raw", value_serializer=codecs.codec_name("PairwiseRating"),
                            partitions=settings.partitions)
    ratings_dlq = app.topic(dlq_name(RATINGS), key_serializer="raw", value_serializer="raw", partitions=1)
    book = PairBook()
    rng = random.Random()

    @app.agent(ratings_in, name="store_ratings")
    async def store_ratings(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_batch_wait_s):
            with finished(app, "store_ratings", events):
                r = rt()
                good = []
                for ev in events:
                    msg = ev.message
                    try:
                        record = codecs.decode("PairwiseRating", ev.value)
                        check_rating(record)
                    except (DecodeError, InvalidEvent) as exc:
                        await dead_letter(ratings_dlq, RATINGS, Rejected(ev.value, ev.key, msg.partition, msg.offset,
                                                                         type(exc).__name__, exc.reason, exc.detail))
                        continue
                    good.append((record, msg.partition, msg.offset))
                if not good:
                    continue
                table = rating_rows(good)
                token = dedup_token("ratings", [(p, o) for _, p, o in good])
                await write_until_stored(r, lambda: r.warehouse.insert("sentinel.ratings", table, token),
                                         f"{len(good)} ratings")
                r.metrics.rows_stored.labels("ratings").inc(len(good))

    def denied(web: faust.web.View, request: faust.web.Request, given: str = "") -> faust.web.Response | None:
        problem = check_token(rt().token, given or _given_token(request))
        if problem is None:
            return None
        return web.text(problem[1] + "\n", status=problem[0])

    @app.page("/sentinel/rate/")
    class RatePage(faust.web.View):
        async def get(self, request: faust.web.Request) -> faust.web.Response:
            if (no := denied(self, request)) is not None:
                return no
            r = rt()
            token = rater_token(r.token)  # links on the page carry the rater token, never the worker's
            rater = _clean_rater(request.query.get("rater"))
            loop = asyncio.get_running_loop()
            try:
                chosen = await loop.run_in_executor(r.sink_pool, next_pair, r.warehouse, book.exclude(), rng)
            except Exception as exc:  # the database's own message, not a stack trace
                log.warning("rating page: scheduling failed: %s: %s", type(exc).__name__, exc)
                return self.text(f"cannot pick a pair: {type(exc).__name__}: {exc}\n", status=503)
            pair = None
            if chosen is not None:
                a, b = (chosen["job_1"], chosen["job_2"]) if rng.random() < 0.5 else (chosen["job_2"], chosen["job_1"])
                pair = book.issue(a, b, chosen["niche"], chosen["prompt"])
            notice = {"1": "Recorded, thank you.", "expired": "That pair was already answered or has expired."}.get(
                request.query.get("done", ""), "")
            return self.html(render_page(pair=pair, token=token, rater=rater, notice=notice),
                             headers={"Cache-Control": "no-store"})

        async def post(self, request: faust.web.Request) -> faust.web.Response:
            form = await request.post()
            if (no := denied(self, request, _given_token(request) or str(form.get("token") or ""))) is not None:
                return no
            token = rater_token(rt().token)
            choice = str(form.get("choice") or "")
            if choice not in WINNERS:
                return self.text(f"choice must be one of a, b, tie, got {choice!r}\n", status=400)
            rater = _clean_rater(str(form.get("rater") or request.query.get("rater") or ""))
            back = {"token": token, "rater": rater}
            pair = book.answer(str(form.get("pair") or ""))
            if pair is None:
                return self.html("", status=303, headers={
                    "Location": "./?" + urllib.parse.urlencode({**back, "done": "expired"})})
            record = {"rating_id": f"web-{pair.pair_id}", "job_a": pair.job_a, "job_b": pair.job_b,
                      "winner": choice, "rater": rater, "rated_at": datetime.now(timezone.utc)}
            delivered = await ratings_out.send(key=record["rating_id"].encode(), value=record, force=True)
            await delivered  # acknowledged by the broker before the rater moves on
            log.info("rating %s published (%s)", record["rating_id"], choice)
            return self.html("", status=303, headers={
                "Location": "./?" + urllib.parse.urlencode({**back, "done": "1"})})

    @app.page("/sentinel/rate/image/")
    async def rate_image(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        if (no := denied(web, request)) is not None:
            return no
        pair = book.get(request.query.get("pair", ""))
        slot = request.query.get("slot", "")
        if pair is None or slot not in ("a", "b"):
            return web.text("unknown or answered pair, or slot is not a/b\n", status=404)
        r = rt()
        job_id = pair.job_a if slot == "a" else pair.job_b
        loop = asyncio.get_running_loop()
        table = await loop.run_in_executor(
            r.sink_pool, lambda: r.warehouse.query(sql_files.report("job_image"), {"job_id": job_id}))
        if table.num_rows == 0:
            return web.text("image not stored\n", status=404)
        image = table.column("image").cast(pa.binary())[0].as_py()
        return web.bytes(image, content_type=table.column("media_type")[0].as_py(),
                         headers={"Cache-Control": "private, no-store"})

