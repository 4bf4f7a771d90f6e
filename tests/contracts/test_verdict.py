"""The verdict API contract: round trips, and every malformed request refused with its field named."""

from __future__ import annotations

import base64
import json

import pytest

from contracts.verdict import MAX_SIDE, Check, RequestError, Verdict, VerdictRequest


def _body(**changes):
    body = {"image": base64.b64encode(b"\x89PNG....").decode(), "media_type": "image/png", "prompt": "a cat",
            "niche": "headshot", "model_id": "m1", "width": 64, "height": 48}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def test_request_round_trip_through_json_text() -> None:
    req = VerdictRequest.for_image(b"abc", media_type="image/jpeg", prompt="p", niche="n", model_id="m",
                                   width=3, height=4, reference_image=b"ref", job_id="j1")
    back = VerdictRequest.from_json(req.dumps())
    assert back == req
    assert back.image_bytes() == b"abc" and back.reference_bytes() == b"ref"
    assert set(json.loads(req.dumps())) == {"image", "media_type", "prompt", "niche", "model_id", "width",
                                            "height", "reference_image", "job_id"}


def test_unknown_fields_are_ignored() -> None:
    assert VerdictRequest.from_json(_body(extra_field=1)).width == 64


@pytest.mark.parametrize("changes, field, status", [
    ({"image": ...}, "image", 422),
    ({"image": 5}, "image", 422),
    ({"media_type": "image/gif"}, "media_type", 415),
    ({"prompt": ["a"]}, "prompt", 422),
    ({"niche": ""}, "niche", 422),
    ({"model_id": None}, "model_id", 422),
    ({"width": "64"}, "width", 422),
    ({"width": True}, "width", 422),
    ({"height": 1.5}, "height", 422),
    ({"height": 0}, "height", 422),
    ({"width": MAX_SIDE + 1}, "width", 413),
    ({"reference_image": 3}, "reference_image", 422),
])
def test_malformed_fields_are_named(changes, field, status) -> None:
    with pytest.raises(RequestError) as caught:
        VerdictRequest.from_json(_body(**changes))
    assert caught.value.field == field and caught.value.status == status
    assert caught.value.to_json() == {"error": caught.value.error, "field": field, "check": None}


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[1, 2]", b"null", b"\"text\""])
def test_a_body_that_is_not_an_object_is_refused(raw) -> None:
    with pytest.raises(RequestError) as caught:
        VerdictRequest.from_json(raw)
    assert caught.value.field is None and 400 <= caught.value.status < 500


def test_bad_base64_names_the_field() -> None:
    req = VerdictRequest.from_json(_body(image="not base64!!", reference_image="@@"))
    with pytest.raises(RequestError) as caught:
        req.image_bytes()
    assert caught.value.field == "image"
    with pytest.raises(RequestError) as caught:
        req.reference_bytes()
    assert caught.value.field == "reference_image"


def test_verdict_round_trip_and_nan_as_null() -> None:
    v = Verdict(False, 42.5, "r1", "v1/x", "headshot",
                (Check("Image decodes", 1.0, None, True, "ok"), Check("Not blank", float("nan"), 2.0, False, "flat")),
                ("Not blank",), "j")
    text = v.dumps()
    assert json.loads(text)["checks"][1]["value"] is None
    back = Verdict.from_json(text)
    assert back.failed_checks == ("Not blank",) and back.checks[0] == v.checks[0] and back.job_id == "j"
