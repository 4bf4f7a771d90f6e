"""The verdict API end to end through FastAPI (httpx ASGI transport) on the tiny CLIP: verdicts,
their CLIP values recomputed from the extractor's embeddings here, planted bad outputs, auth,
refusals in the error shape, the OpenAPI document and the metrics."""

from __future__ import annotations

import asyncio
import base64

import httpx
import numpy as np
import pytest
from PIL import Image

from contracts.verdict import CHECK_NAMES, Verdict
from guard_helpers import AUTH, body, image_bytes, make_app, png_header_only


def run(coro):
    return asyncio.run(coro)


async def post_all(app, bodies, headers=AUTH, path="/v1/verdicts"):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guard") as client:
        return [await client.post(path, json=b, headers=headers) for b in bodies]


async def get(app, path, headers=AUTH):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guard") as client:
        return await client.get(path, headers=headers)


def test_a_verdict_and_its_clip_values(tiny_scorer) -> None:
    app, judge = make_app(tiny_scorer)
    ref = image_bytes(99)
    (resp,) = run(post_all(app, [body(1, reference_image=base64.b64encode(ref).decode())]))
    assert resp.status_code == 200, resp.text
    v = Verdict.from_json(resp.text)
    assert v.passed and v.job_id == "job-1" and v.niche == "headshot" and v.rubric_version == judge.rubric.version
    assert 0 <= v.score <= 100 and v.scorer_version == judge.scorer_version
    checks = {c.name: c for c in v.checks}
    assert list(checks) == list(CHECK_NAMES.values())
    # independent recomputation: cosine of the extractor's embeddings, in numpy
    ex = tiny_scorer.extractor
    img = ex.encode_images([Image.open(__import__("io").BytesIO(image_bytes(1))).convert("RGB")])[0]
    txt = ex.encode_texts(["corporate headshot of a woman"])[0]
    refe = ex.encode_images([Image.open(__import__("io").BytesIO(ref)).convert("RGB")])[0]
    cos = float(np.dot(img.astype(np.float64), txt)) / (np.linalg.norm(img) * np.linalg.norm(txt))
    assert checks[CHECK_NAMES["prompt"]].value == pytest.approx(100 * max(cos, 0.0), abs=1e-3)
    ref_cos = float(np.dot(img.astype(np.float64), refe)) / (np.linalg.norm(img) * np.linalg.norm(refe))
    assert checks[CHECK_NAMES["reference"]].value == pytest.approx(ref_cos, abs=1e-4)


def test_planted_bad_outputs_fail_their_checks(tiny_scorer) -> None:
    app, _ = make_app(tiny_scorer)
    blank = base64.b64encode(image_bytes(0, blank=0)).decode()
    wrong_size = base64.b64encode(image_bytes(3, size=(64, 32))).decode()
    jpeg_as_png = base64.b64encode(image_bytes(4, fmt="JPEG")).decode()
    answers = run(post_all(app, [body(2), body(2), body(5, image=blank), body(6, image=wrong_size),
                                 body(7, image=jpeg_as_png)]))
    failed = [tuple(a.json()["failed_checks"]) for a in answers]
    assert [a.status_code for a in answers] == [200] * 5
    assert failed[0] == ()
    assert failed[1] == (CHECK_NAMES["repeat"],)  # same model, same bytes
    assert failed[2] == (CHECK_NAMES["blank"], CHECK_NAMES["clipped"])
    assert failed[3] == (CHECK_NAMES["resolution"], CHECK_NAMES["aspect"])
    assert failed[4] == (CHECK_NAMES["decodes"],)
    assert all(not a.json()["passed"] for a in answers[1:])


def test_auth(tiny_scorer) -> None:
    app, _ = make_app(tiny_scorer)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"}):
        (resp,) = run(post_all(app, [body(1)], headers=headers))
        assert resp.status_code == 401 and resp.json()["field"] == "Authorization"
    assert run(get(app, "/metrics", headers={})).status_code == 401
    assert run(get(app, "/healthz", headers={})).json()["status"] == "ok"
    open_app, _ = make_app(tiny_scorer, token="")
    assert run(post_all(open_app, [body(1)], headers={}))[0].status_code == 200


@pytest.mark.parametrize("changes, status, field", [
    ({"image": "@@not-base64@@"}, 422, "image"),
    ({"image": base64.b64encode(b"GIF89a....").decode()}, 422, "image"),
    ({"media_type": "image/gif"}, 415, "media_type"),
    ({"width": "64"}, 422, "width"),
    ({"height": 100_000}, 413, "height"),
    ({"width": 16000, "height": 16000}, 413, "width"),
    ({"prompt": None}, 422, "prompt"),
    ({"reference_image": base64.b64encode(b"\x89PNG\r\n\x1a\nxx").decode()}, 422, "reference_image"),
])
def test_bad_requests_name_the_field(tiny_scorer, changes, status, field) -> None:
    app, _ = make_app(tiny_scorer)
    (resp,) = run(post_all(app, [body(1, **changes)]))
    assert resp.status_code == status, resp.text
    assert resp.json()["field"] == field and resp.json()["error"]


def test_bodies_and_bombs(tiny_scorer) -> None:
    app, _ = make_app(tiny_scorer, max_body_bytes=50_000, max_pixels=128 * 128)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
            big = await c.post("/v1/verdicts", content=b"x" * 60_000, headers=AUTH)
            empty = await c.post("/v1/verdicts", content=b"", headers=AUTH)
            bomb = await c.post("/v1/verdicts", headers=AUTH,
                                json=body(1, image=base64.b64encode(png_header_only(60_000, 60_000)).decode()))
            over = await c.post("/v1/verdicts", headers=AUTH,
                                json=body(1, image=base64.b64encode(png_header_only(200, 200)).decode()))
            wrong_method = await c.get("/v1/verdicts", headers=AUTH)
            return big, empty, bomb, over, wrong_method
    big, empty, bomb, over, wrong_method = run(go())
    assert big.status_code == 413 and empty.status_code == 400
    assert bomb.status_code == 413 and bomb.json()["field"] == "image" and bomb.json()["check"] == CHECK_NAMES["decodes"]
    assert over.status_code == 413 and "200x200" in over.json()["error"]
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]


def test_openapi_and_metrics(tiny_scorer) -> None:
    app, _ = make_app(tiny_scorer)
    doc = run(get(app, "/openapi.json")).json()
    op = doc["paths"]["/v1/verdicts"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["required"][:2] == ["image", "media_type"]
    assert "failed_checks" in op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert {"/healthz", "/metrics"} <= set(doc["paths"])
    run(post_all(app, [body(1), body(1), body(2, width="x")]))
    text = run(get(app, "/metrics")).text
    assert 'sentinel_guard_verdicts_total{result="pass"} 1.0' in text
    assert 'sentinel_guard_verdicts_total{result="fail"} 1.0' in text
    assert 'sentinel_guard_checks_total{check="repeat",result="fail"} 1.0' in text
    assert 'sentinel_guard_rejected_total{field="width",status="422"} 1.0' in text
    assert "sentinel_guard_batch_size_count 2.0" in text and "sentinel_guard_verdict_seconds_count 2.0" in text
