"""Pairwise human ratings end to end on the real embedded stack: JSONL import -> ratings.pairwise
-> Faust worker -> sentinel.ratings -> PairwiseCounts; dead letters; the blind A/B rating page
driven in headless Chromium over the DevTools protocol."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import BASE_TIME, MODELS, consume_all, make_event, publish_events, publish_raw, wait_for

from contracts.codec import AvroCodec
from contracts.topics import RATINGS
from inference.ratings import import_ratings
from warehouse.ratings import pairwise_counts, pairwise_counts_by_niche
from worker.ratings import rater_token
from warehouse.window import Window
from warehouse.client import open_reader
from warehouse.owner import live_owner

pytestmark = pytest.mark.integration

A, B, C = (m[0] for m in MODELS)  # flux-dev, sdxl-lightning, proprietary-a
MODEL_INDEX = {A: 0, B: 1, C: 2}
# group -> models with jobs (2 jobs each, except C in group 1: 1 job). A-B pairs in every group;
# A-C and B-C pairs only in groups 0 and 1: 4 + 2 = 6 candidate job pairs each.
GROUPS = {0: {A: 2, B: 2, C: 2}, 1: {A: 2, B: 2, C: 1}, 2: {A: 2, B: 2}, 3: {A: 2, B: 2}}
SEED = 41


def build_events() -> list[dict]:
    events, i = [], 0
    for group, models in GROUPS.items():
        for model, reps in models.items():
            for _ in range(reps):
                e = make_event(i, seed=SEED, model=MODEL_INDEX[model], niche=group % 3)
                e["prompt"] = f"shared prompt of group {group}"
                e["group"] = group
                events.append(e)
                i += 1
    return events


def job_pairs(events: list[dict], m1: str, m2: str, groups: set[int]) -> list[tuple[str, str]]:
    return [(a["job_id"], b["job_id"]) for a in events for b in events
            if a["model_id"] == m1 and b["model_id"] == m2 and a["group"] == b["group"] and a["group"] in groups]


def build_ratings(events: list[dict]) -> list[dict]:
    """A-B: 10 ratings (groups 0-1 by people, groups 2-3 by simulated raters); A-C: 4 job pairs
    x 2 raters = 8; B-C: 5 of its 6 job pairs once (fewest, one pair left unrated); plus one
    same-model rating and one naming an unknown job (neither counted)."""
    rng = random.Random(7)
    rows = []
    t0 = datetime(2026, 2, 1, tzinfo=timezone.utc)

    def add(job_a, job_b, rater):
        if rng.random() < 0.5:
            job_a, job_b = job_b, job_a
        rows.append({"rating_id": f"r-{len(rows):03d}", "job_a": job_a, "job_b": job_b,
                     "winner": rng.choice(["a", "b", "b", "tie"]), "rater": rater,
                     "time": (t0 + timedelta(minutes=len(rows))).isoformat().replace("+00:00", "Z")})

    for ja, jb in job_pairs(events, A, B, {0, 1})[:5]:
        add(ja, jb, rng.choice(["alice", "bob"]))
    for ja, jb in job_pairs(events, A, B, {2, 3})[:5]:
        add(ja, jb, rng.choice(["sim-rater-1", "sim-rater-2"]))
    for ja, jb in job_pairs(events, A, C, {0, 1})[:4]:
        add(ja, jb, "alice")
        add(ja, jb, "bob")
    bc = job_pairs(events, B, C, {0, 1})
    assert len(bc) == 6
    for ja, jb in bc[:5]:
        add(ja, jb, "bob")
    same = [e["job_id"] for e in events if e["model_id"] == A and e["group"] == 0]
    add(same[0], same[1], "alice")
    add(events[0]["job_id"], "job-nobody-stored", "alice")
    return rows


def expected_counts(rows: list[dict], events: list[dict], start: datetime, end: datetime) -> dict:
    """Independent recomputation: ordered (model a, model b) -> [a wins, b wins, ties]."""
    jobs = {e["job_id"]: e for e in events if start <= e["requested_at"] < end}
    out: dict = {}
    for r in rows:
        if r["job_a"] not in jobs or r["job_b"] not in jobs:
            continue
        ma, mb = jobs[r["job_a"]]["model_id"], jobs[r["job_b"]]["model_id"]
        if ma == mb:
            continue
        out.setdefault((ma, mb), [0, 0, 0])[{"a": 0, "b": 1, "tie": 2}[r["winner"]]] += 1
    return out


def counted_raters(rows: list[dict], events: list[dict]) -> set[str]:
    models = {e["job_id"]: e["model_id"] for e in events}
    return {r["rater"] for r in rows if r["job_a"] in models and r["job_b"] in models
            and models[r["job_a"]] != models[r["job_b"]]}


def stored_rows_metric(url: str, table: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "sentinel_rows_stored_total" and s.labels.get("table") == table:
                return s.value
    return 0.0


@pytest.fixture(scope="module")
def rated(embedded_stack, tmp_path_factory):
    events = build_events()
    publish_events(embedded_stack.broker.bootstrap, [{k: v for k, v in e.items() if k != "group"} for e in events])
    reader = open_reader(embedded_stack.settings.dsn)
    wait_for(lambda: reader.query("SELECT count() AS n FROM sentinel.jobs FINAL").to_pylist()[0]["n"] >= len(events),
             180, f"{len(events)} jobs stored", diagnose=embedded_stack.worker.log_tail)
    rows = build_ratings(events)
    path = tmp_path_factory.mktemp("ratings") / "ratings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = import_ratings(embedded_stack.broker.bootstrap, path)
    assert result.errors == [] and result.published == len(rows)
    wait_for(lambda: reader.query("SELECT count() AS n FROM sentinel.ratings FINAL").to_pylist()[0]["n"] >= len(rows),
             120, f"{len(rows)} ratings stored", diagnose=embedded_stack.worker.log_tail)
    return events, rows, path, reader


def test_import_stores_every_rating_as_sent(rated):
    _, rows, _, reader = rated
    stored = reader.query("SELECT rating_id, job_a, job_b, winner, rater, rated_at FROM sentinel.ratings FINAL "
                          "WHERE startsWith(rating_id, 'r-') ORDER BY rating_id").to_pylist()
    assert [r["rating_id"] for r in stored] == [r["rating_id"] for r in rows]
    for got, sent in zip(stored, rows):
        assert (got["job_a"], got["job_b"], got["winner"], got["rater"]) == (
            sent["job_a"], sent["job_b"], sent["winner"], sent["rater"])
        assert got["rated_at"] == datetime.fromisoformat(sent["time"])


def test_pairwise_counts_equal_direct_recomputation(rated):
    events, rows, _, reader = rated
    everything = Window()
    counts, info = pairwise_counts(reader, everything)
    expected = expected_counts(rows, events, everything.start, everything.end)
    assert counts.pairs == expected
    counted = sum(sum(v) for v in expected.values())
    assert counted == len(rows) - 2  # same-model and unknown-job ratings are not counted
    assert info["ratings"] == counted
    assert info["raters"] == len(counted_raters(rows, events)) and info["simulated"] is False
    # a window holding only groups 2-3 (all A-B, simulated raters)
    start = min(e["requested_at"] for e in events if e["group"] == 2)
    late = Window(start, start + timedelta(days=1))
    counts, info = pairwise_counts(reader, late)
    assert counts.pairs == expected_counts(rows, events, late.start, late.end)
    assert set(counts.models) == {A, B} and info["ratings"] == 5
    assert info["simulated"] is True and info["raters"] == len({r["rater"] for r in rows[5:10]})
    # and one holding groups 0-1 only
    early = Window(BASE_TIME - timedelta(hours=1), start)
    counts, info = pairwise_counts(reader, early)
    assert counts.pairs == expected_counts(rows, events, early.start, early.end)
    assert info["simulated"] is False and info["ratings"] == counted - 5
    assert counts.compute().converged
    empty, info = pairwise_counts(reader, Window(BASE_TIME - timedelta(days=9), BASE_TIME - timedelta(days=8)))
    assert empty.pairs == {} and info["ratings"] == 0 and info["simulated"] is False


def test_pairwise_counts_per_niche_equal_direct_recomputation(rated):
    """The per-niche counts behind the per-niche Bradley–Terry fits, recomputed from the sent
    ratings and the events' niches (groups 0 and 3 share a niche)."""
    events, rows, _, reader = rated
    jobs = {e["job_id"]: e for e in events}
    expected: dict = {}
    for r in rows:
        a, b = jobs.get(r["job_a"]), jobs.get(r["job_b"])
        if a is None or b is None or a["model_id"] == b["model_id"] or a["niche"] != b["niche"]:
            continue
        pair = expected.setdefault(a["niche"], {}).setdefault((a["model_id"], b["model_id"]), [0, 0, 0])
        pair[{"a": 0, "b": 1, "tie": 2}[r["winner"]]] += 1
    by_niche = pairwise_counts_by_niche(reader, Window())
    assert {n: c.pairs for n, c in by_niche.items()} == expected
    assert len(expected) == 3 and sum(c.total for c in by_niche.values()) == len(rows) - 2
    assert pairwise_counts_by_niche(reader, Window(BASE_TIME - timedelta(days=9), BASE_TIME - timedelta(days=8))) == {}


def test_reimport_keeps_one_copy_per_rating(rated, embedded_stack):
    """The same file again, through the CLI: every rating is published and written a second time,
    and FINAL still holds one row per rating_id."""
    _, rows, path, reader = rated
    before = stored_rows_metric(embedded_stack.worker.url, "ratings")
    env = {**os.environ, **embedded_stack.settings.to_env()}
    out = subprocess.run([sys.executable, "-m", "cli.main", "ratings", "import", str(path)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"published {len(rows)} ratings to {RATINGS}" in out.stderr
    wait_for(lambda: stored_rows_metric(embedded_stack.worker.url, "ratings") >= before + len(rows), 120,
             "the re-imported ratings written again", diagnose=embedded_stack.worker.log_tail)
    got = reader.query("SELECT count() AS n, uniqExact(rating_id) AS ids FROM sentinel.ratings FINAL "
                       "WHERE startsWith(rating_id, 'r-')").to_pylist()[0]
    assert got == {"n": len(rows), "ids": len(rows)}
    counts, _ = pairwise_counts(reader, Window())
    events = rated[0]
    assert counts.pairs == expected_counts(rows, events, Window().start, Window().end)


def test_bad_rating_records_are_dead_lettered(rated, embedded_stack):
    events, _, _, reader = rated
    codec = AvroCodec("PairwiseRating")
    # jobs that are not stored: the good rating is stored but counted nowhere (other tests' counts hold)
    a_job, b_job = "dlq-job-1", "dlq-job-2"
    good = {"rating_id": "dlq-good", "job_a": a_job, "job_b": b_job, "winner": "tie", "rater": "carol",
            "rated_at": datetime(2026, 2, 2, tzinfo=timezone.utc)}
    bad = [
        (b"bad-r1", os.urandom(200)),
        (b"bad-r2", AvroCodec("JobCompleted").encode(make_event(0))),
        (b"bad-r3", codec.encode(dict(good, rating_id="dlq-same", job_b=a_job))),
        (b"bad-r4", codec.encode(good)[:-3]),
    ]
    publish_raw(embedded_stack.broker.bootstrap, RATINGS, bad + [(b"dlq-good", codec.encode(good))])
    records = consume_all(embedded_stack.broker.bootstrap, f"{RATINGS}.dlq", expect=len(bad))
    assert len(records) == len(bad)
    reasons = {r.key: dict(r.headers)["reason"].decode() for r in records}
    assert reasons == {b"bad-r1": "not_avro_single_object", b"bad-r2": "wrong_record_type",
                       b"bad-r3": "invalid_rating", b"bad-r4": "corrupt_avro_body"}
    for r in records:
        headers = dict(r.headers)
        assert headers["source_topic"] == RATINGS.encode()
        assert {"error_class", "message", "source_partition", "source_offset", "time"} <= set(headers)
        assert r.value == dict(bad)[r.key]
    wait_for(lambda: reader.query("SELECT count() AS n FROM sentinel.ratings FINAL WHERE rating_id = 'dlq-good'")
             .to_pylist()[0]["n"] == 1, 60, "the good rating stored")
    assert reader.query("SELECT count() AS n FROM sentinel.ratings WHERE rating_id = 'dlq-same'").to_pylist() == [{"n": 0}]


def test_ratings_cli_list_and_url(rated, embedded_stack):
    events, rows, _, _ = rated
    env = {**os.environ, **embedded_stack.settings.to_env()}
    out = subprocess.run([sys.executable, "-m", "cli.main", "ratings", "list", "--format", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = {r["rater"]: r for r in json.loads(out.stdout)}
    stored_jobs = {e["job_id"] for e in events}
    for rater in {r["rater"] for r in rows}:
        mine = [r for r in rows if r["rater"] == rater]
        winners = Counter(r["winner"] for r in mine)
        assert (listed[rater]["ratings"], listed[rater]["a_wins"], listed[rater]["b_wins"], listed[rater]["ties"]) == (
            len(mine), winners["a"], winners["b"], winners["tie"])
        assert listed[rater]["unknown_jobs"] == sum(r["job_a"] not in stored_jobs or r["job_b"] not in stored_jobs
                                                    for r in mine)
    url = subprocess.run([sys.executable, "-m", "cli.main", "ratings", "url", "--rater", "dana"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert url.returncode == 0, url.stderr
    link = url.stdout.strip()
    owner_token = live_owner(embedded_stack.settings.chdb_path).token
    assert link == f"{embedded_stack.worker.url}/sentinel/rate/?token={rater_token(owner_token)}&rater=dana"
    assert _status(link.replace("token=", "token=x")) == 403
    # the rater token opens the page, not the read-only SQL view (which could unblind the models)
    query = urllib.request.Request(f"{embedded_stack.worker.url}/sentinel/query/", method="POST",
                                   data=json.dumps({"sql": "SELECT 1"}).encode(),
                                   headers={"Authorization": f"Bearer {rater_token(owner_token)}"})
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(query, timeout=30)
    assert denied.value.code == 401


# -- the rating page ---------------------------------------------------------------------

def _status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class Chromium:
    """Headless Chromium driven over the DevTools protocol (aiohttp websocket client)."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5) as response:
                    pages = [t for t in json.loads(response.read()) if t.get("type") == "page"]
                if pages:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromium has no page target")
            time.sleep(0.2)
        self.ws_url = pages[0]["webSocketDebuggerUrl"]

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


async def _drive_page(ws_url: str, url: str, shot: Path) -> dict:
    """Open the page, read the DOM, screenshot it, click "A is better" with real mouse events,
    and wait for the next page."""
    import aiohttp

    ids = itertools.count(1)
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        async def call(method: str, **params):
            i = next(ids)
            await ws.send_json({"id": i, "method": method, "params": params})
            while True:
                msg = await ws.receive_json(timeout=60)
                if msg.get("id") == i:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg["result"]

        async def evaluate(expr: str):
            result = await call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
            return result["result"].get("value")

        async def until(expr: str, what: str, timeout: float = 30):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if await evaluate(expr):
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"chromium: timed out waiting for {what}")

        await call("Page.enable")
        await call("Page.navigate", url=url)
        await until("document.readyState === 'complete' && document.images.length === 2 && "
                    "[...document.images].every(i => i.complete && i.naturalWidth > 0)", "two loaded images")
        first = await evaluate("({html: document.documentElement.outerHTML, text: document.body.innerText, "
                               "images: [...document.images].map(i => ({src: i.src, id: i.id, w: i.naturalWidth, "
                               "x: i.getBoundingClientRect().x}))})")
        first["bytes"] = await evaluate(
            "Promise.all([...document.images].map(async i => { const r = await fetch(i.src); "
            "const b = new Uint8Array(await r.arrayBuffer()); let s = ''; for (const x of b) s += String.fromCharCode(x); "
            "return {src: i.src, type: r.headers.get('content-type'), b64: btoa(s)}; }))")
        png = await call("Page.captureScreenshot", format="png")
        shot.write_bytes(base64.b64decode(png["data"]))
        box = await evaluate("(() => { const r = document.getElementById('choose-a').getBoundingClientRect(); "
                             "return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()")
        for kind in ("mousePressed", "mouseReleased"):
            await call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)
        await until("location.search.includes('done=1') && document.readyState === 'complete'", "the next page")
        after = await evaluate("({text: document.body.innerText, images: [...document.images].map(i => i.src)})")
        return {"first": first, "after": after}


def test_rating_page_needs_the_token(embedded_stack):
    base = f"{embedded_stack.worker.url}/sentinel/rate/"
    assert _status(base) == 401
    assert _status(base + "?token=wrong") == 403
    assert _status(base, {"X-Sentinel-Token": "wrong"}) == 403
    assert _status(base + "image/?pair=x&slot=a") == 401
    token = live_owner(embedded_stack.settings.chdb_path).token
    # the right token in a header gets past the check (to "no such pair"; a page view would issue a pair)
    assert _status(base + "image/?pair=x&slot=a", {"Authorization": f"Bearer {token}"}) == 404
    assert _status(base + "image/?pair=x&slot=a", {"X-Sentinel-Token": token}) == 404
    req = urllib.request.Request(base, data=b"pair=x&choice=a", method="POST")
    try:
        urllib.request.urlopen(req, timeout=30)
        code = 200
    except urllib.error.HTTPError as exc:
        code = exc.code
    assert code == 401, "posting a rating needs the token too"


def test_rating_page_in_chromium(rated, embedded_stack, tmp_path):
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium) - the rating page needs a browser test")
    events, rows, _, reader = rated
    token = live_owner(embedded_stack.settings.chdb_path).token
    url = f"{embedded_stack.worker.url}/sentinel/rate/?token={token}&rater=chrome-tester"
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    shot = Path(os.environ.get("SENTINEL_RATING_SCREENSHOT", tmp_path / "rating-page.png"))
    browser = Chromium(binary, profile)
    try:
        seen = asyncio.run(_drive_page(browser.ws_url, url, shot))
    finally:
        browser.close()
    first = seen["first"]
    # blind: no model name and no job id anywhere in the DOM
    for model in (A, B, C):
        assert model not in first["html"]
    for e in events:
        assert e["job_id"] not in first["html"]
    assert token not in first["html"] and rater_token(token) in first["html"], "links carry the rater token"
    assert shot.stat().st_size > 5000
    # which jobs were shown: the served image bytes identify them (every event's image is distinct)
    by_image = {e["image"]: e for e in events}
    left, right = sorted(first["images"], key=lambda i: i["x"])
    assert (left["id"], right["id"]) == ("image-a", "image-b")
    served = {f["src"]: f for f in first["bytes"]}  # fetched by the page before the click
    assert all(f["type"] == "image/webp" for f in served.values())
    job_a, job_b = (by_image[base64.b64decode(served[img["src"]]["b64"])] for img in (left, right))
    assert job_a["prompt"] == job_b["prompt"] and job_a["niche"] == job_b["niche"]
    assert job_a["prompt"] in first["text"]
    # scheduling: B-C has the fewest ratings, and exactly one of its job pairs is unrated
    rated_pairs = {frozenset((r["job_a"], r["job_b"])) for r in rows}
    unrated_bc = [p for p in job_pairs(events, B, C, {0, 1}) if frozenset(p) not in rated_pairs]
    assert len(unrated_bc) == 1
    assert {job_a["job_id"], job_b["job_id"]} == set(unrated_bc[0])
    # the click on "A is better" is stored as shown
    stored = wait_for(lambda: reader.query(
        "SELECT job_a, job_b, winner, rater FROM sentinel.ratings FINAL WHERE rater = 'chrome-tester'").to_pylist(),
        60, "the page's rating stored", diagnose=embedded_stack.worker.log_tail)
    assert stored == [{"job_a": job_a["job_id"], "job_b": job_b["job_id"], "winner": "a", "rater": "chrome-tester"}]
    # the next page says so and shows another pair (B-C has no unrated pair left: A-C is next)
    assert "Recorded" in seen["after"]["text"] and len(seen["after"]["images"]) == 2
    # the answered pair's images are no longer served, and a pair id answers only once
    assert _status(left["src"]) == 404
    counts, info = pairwise_counts(reader, Window())
    assert sum(counts.unordered()[tuple(sorted((B, C)))]) == 6
    assert info["raters"] == len(counted_raters(rows, events)) + 1 and info["simulated"] is False
    assert _status(f"{embedded_stack.worker.url}/sentinel/rate/", {"Authorization": f"Bearer {token}"}) == 200
