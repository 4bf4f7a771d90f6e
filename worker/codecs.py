"""Faust codecs for the Avro records: ``avro-JobCompleted``, ``avro-JobScored``.

Registered once at import, so a topic can say ``value_serializer="avro-JobScored"``. Input
topics are consumed as raw bytes and decoded with the same codecs inside the agents, so an
undecodable record reaches the dead-letter topic with a reason before its offset is acked
(Faust's own decode-error path acks first and only logs).
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from contracts.codec import AvroCodec

RECORDS = ("JobCompleted", "JobScored", "QualityAlert", "PairwiseRating")


class FaustAvroCodec(codecs.Codec):
    def __init__(self, record_name: str, **kwargs: Any) -> None:
        super().__init__(record_name=record_name, **kwargs)
        self.avro = AvroCodec(record_name)

    def _dumps(self, obj: Any) -> bytes:
        return self.avro.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self.avro.decode(s)


def codec_name(record_name: str) -> str:
    return f"avro-{record_name}"


for _name in RECORDS:
    codecs.register(codec_name(_name), FaustAvroCodec(_name))


def decode(record_name: str, data: bytes) -> dict[str, Any]:
    """Decode with the registered codec (raises contracts.codec.DecodeError)."""
    return codecs.loads(codec_name(record_name), data)


def encode(record_name: str, value: dict[str, Any]) -> bytes:
    return codecs.dumps(codec_name(record_name), value)
