"""Fuzz: >= 1,000 malformed requests against a real `sentinel guard` process (uvicorn, tiny CLIP).

Every answer must be a 4xx with a JSON reason (never a 500, never a dropped connection), a valid
request must still get its verdict afterwards, and the server's resident memory must stay flat:
after a warm-up of malformed requests, RSS may grow by at most RSS_BOUND_MB over the rest.
"""

from __future__ import annotations

import base64
import json
import os
import random
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from devstack.guard_process import GuardProcess

from guard_helpers import body, image_bytes, png_header_only

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "fuzz-token"
MAX_BODY = 256 * 1024
MAX_PIXELS = 512 * 512
RSS_BOUND_MB = 25.0
N = 1000


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    env = {**os.environ, "SENTINEL_GUARD_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1", "SENTINEL_LOG_LEVEL": "warning"}
    guard = GuardProcess(env, ["--max-body-mb", str(MAX_BODY / 2**20), "--max-pixels", str(MAX_PIXELS)],
                         cwd=ROOT).start()
    try:
        yield guard.wait_ready(), guard.proc.pid
    finally:
        guard.stop()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def malformed(rng: random.Random) -> tuple[str, bytes, dict[str, str]]:
    """One malformed request: (kind, raw body, headers)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    good = body(rng.randrange(1000))
    kind = rng.choice(["random_bytes", "not_object", "deep_json", "missing", "wrong_type", "truncated_b64",
                       "bad_b64", "huge_dims", "oversize", "corrupt_png", "bomb", "media_type", "bad_ref",
                       "bad_token", "bad_utf8", "big_int", "empty_strings"])
    if kind == "random_bytes":
        return kind, rng.randbytes(rng.randrange(1, 4096)), auth
    if kind == "not_object":
        return kind, json.dumps(rng.choice([[1, 2], None, 3.5, "text", True, [good]])).encode(), auth
    if kind == "deep_json":
        depth = rng.choice([50, 5000, 100_000])
        return kind, (b"[" * depth + b"]" * depth)[: MAX_BODY - 1], auth
    if kind == "missing":
        del good[rng.choice(["image", "media_type", "prompt", "niche", "model_id", "width", "height"])]
    elif kind == "wrong_type":
        name = rng.choice(list(good))
        if name in ("width", "height"):
            good[name] = rng.choice([None, 2.5, True, [], {}, "", "64", [1, 2], 64.0])
        else:
            good[name] = rng.choice([1, -3, 2.5, True, False, [], {}, [1, 2], {"a": "b"}, 0]
                                    + ([] if name in ("job_id", "reference_image") else [None]))
    elif kind == "truncated_b64":
        good["image"] = good["image"][: rng.randrange(1, len(good["image"]) - 1)]
    elif kind == "bad_b64":
        good["image"] = "".join(rng.choice("!@#$%^&*() \n\u00e9") for _ in range(rng.randrange(1, 200)))
    elif kind == "huge_dims":
        good[rng.choice(["width", "height"])] = rng.choice([0, -1, 10**6, 2**31, 2**63, 16384])
        if good["width"] == 16384 or good["height"] == 16384:
            good["width"] = good["height"] = 16384
    elif kind == "oversize":
        return kind, b'{"image": "' + b"A" * (MAX_BODY + rng.randrange(1, 100_000)) + b'"}', auth
    elif kind == "corrupt_png":
        data = bytearray(image_bytes(rng.randrange(1000), size=(32, 32)))
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(0, 33)] ^= 1 << rng.randrange(8)  # signature, IHDR and its CRC
        good["image"] = b64(bytes(data)[: rng.choice([len(data), len(data) // 2])])
    elif kind == "bomb":
        good["image"] = b64(png_header_only(rng.choice([600, 5000, 60_000]), rng.choice([600, 5000, 60_000])))
    elif kind == "media_type":
        good["media_type"] = rng.choice(["image/gif", "text/html", "", "image/PNG", "x" * 500])
    elif kind == "bad_ref":
        good["reference_image"] = rng.choice([b64(rng.randbytes(100)), "%%%", b64(png_header_only(9000, 9000))])
    elif kind == "bad_token":
        auth = rng.choice([{}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}])
    elif kind == "bad_utf8":
        return kind, b'{"image": "\xff\xfe", "width": 1}', auth
    elif kind == "big_int":
        return kind, json.dumps(good).replace('"width": 64', '"width": ' + "9" * 5000).encode(), auth
    elif kind == "empty_strings":
        good[rng.choice(["niche", "model_id", "image"])] = ""
    return kind, json.dumps(good).encode(), auth


def test_malformed_requests_get_4xx_and_memory_stays_flat(server) -> None:
    url, pid = server
    rng = random.Random(18)
    statuses: dict[str, set[int]] = {}
    rss: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(N):
            kind, raw, headers = malformed(rng)
            resp = client.post("/v1/verdicts", content=raw, headers={**headers, "Content-Type": "application/json"})
            assert 400 <= resp.status_code < 500, f"{kind}: {resp.status_code} {resp.text[:300]}"
            payload = resp.json()
            assert isinstance(payload["error"], str) and payload["error"], (kind, payload)
            statuses.setdefault(kind, set()).add(resp.status_code)
            if i in (200, N - 1):
                rss.append(rss_mb(pid))
        ok = client.post("/v1/verdicts", json=body(12345), headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "passed" in ok.json()
    assert len(statuses) >= 15, statuses  # the generator covered (nearly) every kind
    assert statuses["oversize"] == {413} and statuses["bad_token"] == {401}
    assert rss[1] - rss[0] <= RSS_BOUND_MB, f"RSS grew {rss[0]:.1f} -> {rss[1]:.1f} MiB over {N - 200} requests"
    print(f"fuzz: {N} malformed requests, statuses by kind {sorted((k, sorted(v)) for k, v in statuses.items())}, "
          f"server RSS {rss[0]:.1f} -> {rss[1]:.1f} MiB")
