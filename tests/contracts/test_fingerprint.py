"""Our schema fingerprint, recomputed from the .avsc files by an implementation written here from
the Avro specification (Parsing Canonical Form + CRC-64-AVRO), so a producer in another language
has an independent reference: README "Event fingerprints"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.codec import schema

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
KEEP = ("name", "type", "fields", "symbols", "items", "values", "size")  # [ORDER]
EMPTY = 0xC15D213AA4D7A795


def canonical(node, namespace: str = "") -> str:
    """Parsing Canonical Form: [PRIMITIVES] [FULLNAMES] [STRIP] [ORDER] [STRINGS] [INTEGERS] [WHITESPACE]."""
    if isinstance(node, str):
        if node in PRIMITIVES:
            return json.dumps(node)
        return json.dumps(node if "." in node or not namespace else f"{namespace}.{node}")
    if isinstance(node, list):
        return "[" + ",".join(canonical(n, namespace) for n in node) + "]"
    kind = node["type"]
    if kind in PRIMITIVES:  # {"type": "long", "logicalType": ...} is the primitive
        return json.dumps(kind)
    if "name" in node:
        name = node["name"]
        if "." not in name:
            namespace = node.get("namespace", namespace)
            name = f"{namespace}.{name}" if namespace else name
        else:
            namespace = name.rsplit(".", 1)[0]
        node = {**node, "name": name}
    parts = []
    for key in KEEP:
        if key not in node:
            continue
        value = node[key]
        if key == "type":
            text = canonical(value, namespace) if not isinstance(value, str) or value not in (
                "record", "enum", "array", "map", "fixed") else json.dumps(value)
        elif key == "fields":
            text = "[" + ",".join("{" + f'"name":{json.dumps(f["name"])},"type":{canonical(f["type"], namespace)}' + "}"
                                  for f in value) + "]"
        elif key in ("items", "values"):
            text = canonical(value, namespace)
        elif key == "size":
            text = str(int(value))
        else:
            text = json.dumps(value, separators=(",", ":"))
        parts.append(f'"{key}":{text}')
    return "{" + ",".join(parts) + "}"


def crc64_avro(data: bytes) -> int:
    """The spec's 64-bit Rabin fingerprint."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp)
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_crc64_avro_of_the_empty_input_is_the_seed() -> None:
    assert crc64_avro(b"") == EMPTY


@pytest.mark.parametrize("name,path", [("JobCompleted", "job_completed.avsc"), ("JobScored", "job_scored.avsc"),
                                       ("PairwiseRating", "pairwise_rating.avsc"),
                                       ("QualityAlert", "quality_alert.avsc")])
def test_the_wire_fingerprint_is_crc64_of_the_parsing_canonical_form(name, path) -> None:
    form = canonical(json.loads((CONTRACTS / path).read_text()))
    assert '"doc"' not in form and "logicalType" not in form and " " not in form.replace('" "', "")
    assert schema(name).fingerprint == crc64_avro(form.encode()).to_bytes(8, "little")


def test_the_readme_example() -> None:
    form = canonical(json.loads((CONTRACTS / "pairwise_rating.avsc").read_text()))
    assert form.startswith('{"name":"sentinel.events.PairwiseRating","type":"record","fields":[{"name":"rating_id"')
    assert crc64_avro(form.encode()).to_bytes(8, "little").hex() == "f098fc65ca73eaba"
