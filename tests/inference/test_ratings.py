"""Ratings import (inference/ratings.py): the JSON Lines format's line-numbered errors, all or
nothing by default, and the CLI around it; nothing reaches a broker."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from cli.main import app
from contracts.codec import AvroCodec
from contracts.ratings import check_rating
from inference.ratings import import_ratings, parse_ratings, read_ratings_file

UTC = timezone.utc
GOOD = {"rating_id": "r-1", "job_a": "job-1", "job_b": "job-2", "winner": "a", "rater": "alice",
        "time": "2026-01-05T09:00:00.123Z"}
UNREACHABLE = "127.0.0.1:1"  # publishing would fail loudly: these tests prove nothing is sent


def line(**changes) -> str:
    row = dict(GOOD, **changes)
    return json.dumps({k: v for k, v in row.items() if v is not ...})


def test_good_lines_become_records() -> None:
    lines = [line(), "", line(rating_id="r-2", winner="tie", time=1767603600000, rater="sim-rater-3"),
             line(rating_id="r-3", winner="b", time="2026-01-05T10:00:00+01:00", extra="ignored")]
    records, errors = parse_ratings(lines)
    assert errors == []
    assert records == [
        {"rating_id": "r-1", "job_a": "job-1", "job_b": "job-2", "winner": "a", "rater": "alice",
         "rated_at": datetime(2026, 1, 5, 9, 0, 0, 123000, tzinfo=UTC)},
        {"rating_id": "r-2", "job_a": "job-1", "job_b": "job-2", "winner": "tie", "rater": "sim-rater-3",
         "rated_at": datetime.fromtimestamp(1767603600, UTC)},
        {"rating_id": "r-3", "job_a": "job-1", "job_b": "job-2", "winner": "b", "rater": "alice",
         "rated_at": datetime(2026, 1, 5, 9, 0, tzinfo=UTC)},
    ]
    codec = AvroCodec("PairwiseRating")
    for r in records:  # every parsed record is a valid PairwiseRating that survives the wire
        check_rating(r)
        assert codec.decode(codec.encode(r)) == r


BAD = [  # (line text, reason pattern)
    ("{not json", r"not valid JSON"),
    ('["a", "b"]', r"must be a JSON object, got list"),
    (line(winner="left"), r"winner 'left' is not one of a, b, tie"),
    (line(job_b="job-1"), r"job_a and job_b are the same job \('job-1'\)"),
    (line(rater=...), r"missing field: rater"),
    (line(rater=..., time=...), r"missing fields: rater, time"),
    (line(job_a=None), r"null field: job_a"),
    (line(time="2026-01-05T09:00:00"), r"has no time zone"),
    (line(time="yesterday"), r"not an ISO-8601 time"),
    (line(time=1.5), r"not a whole number of epoch milliseconds"),
    (line(rater=7), r"rater must be a string, got int"),
    (line(rating_id="  "), r"rating_id is empty"),
    (line(winner="x", time="nope"), r"winner 'x'.*; time 'nope'"),  # every problem of a line, not just the first
]


def test_bad_lines_are_reported_by_line_number() -> None:
    lines = [line(rating_id="ok-0")]
    expected = {}
    for i, (text, pattern) in enumerate(BAD):
        lines += ["", text] if i == 3 else [text]  # a blank line still counts as a line
        expected[len(lines)] = pattern
    lines.append(line(rating_id="ok-0"))  # duplicate of line 1
    expected[len(lines)] = r"duplicate rating_id 'ok-0' \(first seen on line 1\)"
    lines.append(line(rating_id="ok-1"))
    records, errors = parse_ratings(lines)
    assert [r["rating_id"] for r in records] == ["ok-0", "ok-1"]
    assert [e.line for e in errors] == sorted(expected)
    for err in errors:
        assert re.search(expected[err.line], err.reason), (err.line, err.reason)
        assert str(err) == f"line {err.line}: {err.reason}"


def test_non_utf8_line(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(line().encode() + b"\n\xff\xfe\n")
    records, errors = read_ratings_file(path)
    assert len(records) == 1 and [(e.line, e.reason) for e in errors] == [(2, "not UTF-8 text")]


def test_invalid_file_publishes_nothing(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(line() + "\n" + line(rating_id="r-2", winner="maybe") + "\n")
    result = import_ratings(UNREACHABLE, path)  # would raise if it tried to reach the broker
    assert result.published == 0
    assert [str(e) for e in result.errors] == ["line 2: winner 'maybe' is not one of a, b, tie"]


def test_import_cli_reports_lines_and_refuses(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join([line(), line(rating_id="r-2", job_b="job-1"), "oops", line(rating_id="r-4")]) + "\n")
    result = CliRunner().invoke(app, ["ratings", "import", str(path)],
                                env={"COLUMNS": "200", "SENTINEL_BROKER_URL": f"kafka://{UNREACHABLE}"})
    assert result.exit_code == 1, result.output
    assert "line 2: job_a and job_b are the same job ('job-1')" in result.output
    assert "line 3: not valid JSON" in result.output
    assert "nothing published: 2 invalid line(s)" in result.output
    missing = CliRunner().invoke(app, ["ratings", "import", str(tmp_path / "nope.jsonl")], env={"COLUMNS": "200"})
    assert missing.exit_code == 2 and "no such file" in missing.output


@pytest.mark.parametrize("command", [["ratings"], ["ratings", "import"], ["ratings", "list"], ["ratings", "url"]])
def test_ratings_help(command) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    if command[-1] == "import":
        assert "--skip-invalid" in result.output and "ratings.pairwise" in result.output
