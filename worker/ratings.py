"""The blind A/B rating page a worker serves (``GET /sentinel/rate/?token=...&rater=...``;
token as query parameter, the ``X-Sentinel-Token`` header or ``Authorization: Bearer``).

It takes the worker's token or the rater token derived from it (:func:`rater_token`, what
``sentinel ratings url`` prints), which opens the page but not the read-only SQL view. One pair
at a time, picked by worker/rating_pairs.py; the page carries only a random pair id (which job
is A and B lives in the worker's memory, so neither model names nor job ids reach the
browser), and a pair id is good for one answer. With several workers, a rater must stay on the
worker that served the page. Answers go to ``ratings.pairwise`` like imported ratings
(inference/ratings.py) and are stored by the ratings agent (worker/agents/ratings.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import random
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any, Callable

import faust
import pyarrow as pa

import sql as sql_files
from contracts.errors import InvalidEvent
from contracts.ratings import DEFAULT_RATER, MAX_ID_LEN, WINNERS
from objects.store import ObjectStore
from worker.rating_pairs import Pair, PairBook, next_pair


log = logging.getLogger(__name__)

PAGE = Path(__file__).resolve().parent / "rate.html"


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


def register_rating_page(app: faust.App, rt: Callable[[], Any], ratings_out: Any) -> None:
    """The token-protected blind A/B page; answers are published to ``ratings_out``."""
    book = PairBook()
    rng = random.Random()

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
        uri = table.column("image_uri")[0].as_py()
        if uri:  # kept by reference: from the object store, digest checked
            try:
                image = await loop.run_in_executor(r.sink_pool, ObjectStore(r.settings.object_store_root).fetch_uri, uri)
            except InvalidEvent as exc:
                return web.text(f"image not available: {exc.reason}\n", status=404)
        return web.bytes(image, content_type=table.column("media_type")[0].as_py(),
                         headers={"Cache-Control": "private, no-store"})

