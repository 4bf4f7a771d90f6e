"""The Guard verdict API as plain data (stdlib only): what a node sends to ``POST /v1/verdicts``,
the verdict it gets back, and the error body of a refused request.

One definition for both sides: the service (guard/) parses requests with
``VerdictRequest.from_json`` and answers with ``Verdict.to_json``; a guarded node builds requests
with ``VerdictRequest.for_image`` and reads answers with ``Verdict.from_json``. Parsing checks
types and presence only (every problem raises ``RequestError`` naming the field); what the rubric
thinks of the image is the verdict's business, not a parse error. Unknown fields are ignored so
either side may add fields without breaking the other (fields are added, never renamed).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

VERDICTS_PATH = "/v1/verdicts"
MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp")
TOKEN_ENV = "SENTINEL_GUARD_TOKEN"  # the bearer token the service requires when set
MAX_SIDE = 16384  # requested width/height above this are refused (absurd dimensions)
MAX_TEXT = 10_000  # characters of prompt / ids

# The rubric's checks: a stable key (rubric.toml weights, metric labels) -> the name a verdict
# gives it (``Check.name``, ``failed_checks``), in the order a verdict lists them.
CHECK_NAMES: dict[str, str] = {
    "decodes": "Image decodes",
    "resolution": "Resolution as requested",
    "aspect": "Aspect ratio as requested",
    "blank": "Not blank or near-uniform",
    "clipped": "Not over-exposed or clipped",
    "repeat": "Not a repeat of a recent output",
    "prompt": "Matches the prompt (CLIP)",
    "reference": "Looks like the reference photo (CLIP)",
}


class RequestError(ValueError):
    """A request the service refuses: ``error`` for people, ``field`` the JSON field at fault
    (None when the body as a whole is wrong), ``status`` the HTTP status to answer with."""

    def __init__(self, error: str, field: str | None = None, status: int = 422, check: str | None = None) -> None:
        super().__init__(f"{field}: {error}" if field else error)
        self.error = error
        self.field = field
        self.status = status
        self.check = check

    def to_json(self) -> dict[str, Any]:
        return ApiError(self.error, self.field, self.check).to_json()


@dataclass(frozen=True)
class ApiError:
    """The body of every 4xx answer: ``{"error": str, "field": str | null}``, plus ``check``: the
    rubric check the problem amounts to (``"Image decodes"`` for bytes that are no image of the
    allowed size), so a guarded node can count a refused output as a failed attempt."""

    error: str
    field: str | None = None
    check: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "field": self.field, "check": self.check}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> "ApiError":
        obj = _object(data)
        return cls(str(obj.get("error", "")), obj.get("field"), obj.get("check"))


@dataclass(frozen=True)
class VerdictRequest:
    """One output image to judge. ``image`` and ``reference_image`` are base64 text;
    ``width``/``height`` are the output size the job asked for."""

    image: str
    media_type: str
    prompt: str
    niche: str
    model_id: str
    width: int
    height: int
    reference_image: str | None = None
    job_id: str | None = None

    @classmethod
    def for_image(cls, image: bytes, *, media_type: str, prompt: str, niche: str, model_id: str, width: int,
                  height: int, reference_image: bytes | None = None, job_id: str | None = None) -> "VerdictRequest":
        """A request from raw bytes (base64-encodes them)."""
        ref = base64.b64encode(reference_image).decode("ascii") if reference_image is not None else None
        return cls(base64.b64encode(image).decode("ascii"), media_type, prompt, niche, model_id, width, height,
                   ref, job_id)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def dumps(self) -> str:
        return json.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> "VerdictRequest":
        """Parse and type-check a request body; raises ``RequestError`` for the first problem."""
        obj = _object(data)
        text = {name: _text(obj, name, required=True, empty_ok=(name == "prompt"))
                for name in ("image", "media_type", "prompt", "niche", "model_id")}
        if text["media_type"] not in MEDIA_TYPES:
            raise RequestError(f"unsupported media type {text['media_type'][:60]!r}; one of {list(MEDIA_TYPES)}",
                               "media_type", 415)
        if not text["image"]:
            raise RequestError("empty image", "image")
        sizes = {name: _side(obj, name) for name in ("width", "height")}
        reference = _text(obj, "reference_image", required=False)
        job_id = _text(obj, "job_id", required=False)
        return cls(text["image"], text["media_type"], text["prompt"], text["niche"], text["model_id"],
                   sizes["width"], sizes["height"], reference or None, job_id)

    def image_bytes(self) -> bytes:
        return _b64(self.image, "image")

    def reference_bytes(self) -> bytes | None:
        return _b64(self.reference_image, "reference_image") if self.reference_image else None


@dataclass(frozen=True)
class Check:
    """One rubric check: a name a person understands, the measured value and the threshold
    (None where the check has no number), whether it passed, and why."""

    name: str
    value: float | None
    threshold: float | None
    passed: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": _finite(self.value), "threshold": _finite(self.threshold),
                "passed": bool(self.passed), "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Check":
        return cls(str(data["name"]), _opt_float(data.get("value")), _opt_float(data.get("threshold")),
                   bool(data["passed"]), str(data.get("reason", "")))


@dataclass(frozen=True)
class Verdict:
    """The answer: ``passed`` (every check passed), a 0-100 ``score``, the versions that judged,
    every check, and the names of the failed ones (in check order)."""

    passed: bool
    score: float
    rubric_version: str
    scorer_version: str
    niche: str
    checks: tuple[Check, ...] = ()
    failed_checks: tuple[str, ...] = ()
    job_id: str | None = None  # echoed from the request (added field)

    def to_json(self) -> dict[str, Any]:
        return {"passed": bool(self.passed), "score": float(self.score), "rubric_version": self.rubric_version,
                "scorer_version": self.scorer_version, "niche": self.niche,
                "checks": [c.to_json() for c in self.checks], "failed_checks": list(self.failed_checks),
                "job_id": self.job_id}

    def dumps(self) -> str:
        return json.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> "Verdict":
        obj = _object(data)
        try:
            checks = tuple(Check.from_json(c) for c in obj.get("checks", ()))
            return cls(bool(obj["passed"]), float(obj["score"]), str(obj["rubric_version"]),
                       str(obj["scorer_version"]), str(obj["niche"]), checks,
                       tuple(str(n) for n in obj.get("failed_checks", ())), obj.get("job_id"))
        except (KeyError, TypeError, ValueError) as exc:
            raise RequestError(f"not a verdict: {type(exc).__name__}: {exc}") from exc


# -- JSON Schema of the API (the service's OpenAPI document embeds these) -------------------------
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["image", "media_type", "prompt", "niche", "model_id", "width", "height"],
    "properties": {
        "image": {"type": "string", "format": "byte", "description": "the output image, base64"},
        "media_type": {"type": "string", "enum": list(MEDIA_TYPES)},
        "prompt": {"type": "string", "maxLength": MAX_TEXT},
        "niche": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        "model_id": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        "width": {"type": "integer", "minimum": 1, "maximum": MAX_SIDE, "description": "requested output width"},
        "height": {"type": "integer", "minimum": 1, "maximum": MAX_SIDE, "description": "requested output height"},
        "reference_image": {"type": ["string", "null"], "format": "byte",
                            "description": "the customer's reference photo, base64 (optional)"},
        "job_id": {"type": ["string", "null"]},
    },
}
CHECK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "value", "threshold", "passed", "reason"],
    "properties": {"name": {"type": "string"}, "value": {"type": ["number", "null"]},
                   "threshold": {"type": ["number", "null"]}, "passed": {"type": "boolean"},
                   "reason": {"type": "string"}},
}
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["passed", "score", "rubric_version", "scorer_version", "niche", "checks", "failed_checks"],
    "properties": {"passed": {"type": "boolean"}, "score": {"type": "number", "minimum": 0, "maximum": 100},
                   "rubric_version": {"type": "string"}, "scorer_version": {"type": "string"},
                   "niche": {"type": "string"}, "checks": {"type": "array", "items": CHECK_SCHEMA},
                   "failed_checks": {"type": "array", "items": {"type": "string"}},
                   "job_id": {"type": ["string", "null"]}},
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "field"],
    "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]},
                   "check": {"type": ["string", "null"]}},
}


# -- parsing helpers --------------------------------------------------------------------------------
def _object(data: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(data, (str, bytes, bytearray)):
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RequestError(f"body is not JSON: {type(exc).__name__}", None, 400) from exc
    if not isinstance(data, Mapping):
        raise RequestError(f"body must be a JSON object, got {_kind(data)}", None, 422)
    return data


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _text(obj: Mapping[str, Any], name: str, *, required: bool, empty_ok: bool = False) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise RequestError("missing required field", name)
        return None
    if not isinstance(value, str):
        raise RequestError(f"must be a string, got {_kind(value)}", name)
    if not value and required and not empty_ok and name != "image":
        raise RequestError("must not be empty", name)
    if name not in ("image", "reference_image") and len(value) > MAX_TEXT:
        raise RequestError(f"longer than {MAX_TEXT} characters", name)
    return value


def _side(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None:
        raise RequestError("missing required field", name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"must be an integer, got {_kind(value)}", name)
    if value < 1:
        raise RequestError(f"must be at least 1, got {value}", name)
    if value > MAX_SIDE:
        raise RequestError(f"{value} is above the largest side accepted ({MAX_SIDE})", name, 413)
    return value


def _b64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"not valid base64: {exc}", name) from exc


def _finite(value: float | None) -> float | None:
    """JSON has no NaN/inf: a non-finite number is sent as null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
