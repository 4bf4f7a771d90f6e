"""Stored ratings: Arrow rows for ``sentinel.ratings`` and the window's pairwise counts that the
Bradley–Terry fit takes (ratings of two jobs both requested in the window)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pyarrow as pa

import sql as sql_files
from sentinel.human import PairwiseCounts
from warehouse.client import Warehouse
from warehouse.window import Window

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


def rating_rows(items: Sequence[tuple[Mapping[str, Any], int, int]]) -> pa.Table:
    """``items``: (decoded PairwiseRating, source partition, source offset)."""
    cols: dict[str, list] = {f.name: [] for f in RATINGS_SCHEMA}
    for record, partition, offset in items:
        for name in ("rating_id", "job_a", "job_b", "winner", "rater", "rated_at"):
            cols[name].append(record[name])
        cols["source_partition"].append(partition)
        cols["source_offset"].append(offset)
    return pa.table(cols, schema=RATINGS_SCHEMA)


def pairwise_counts(reader: Warehouse, window: Window | None = None) -> tuple[PairwiseCounts, dict[str, Any]]:
    """Stored ratings whose two jobs were both requested in ``window`` (all time if None), as
    PairwiseCounts per ordered (model shown as a, model shown as b), and a summary:

    ``ratings`` (counted), ``raters`` (distinct), ``human_raters`` (ids not starting with
    "sim-"), ``simulated`` (True when there are ratings and every rater id starts with "sim-"),
    ``model_pairs`` (ordered pairs with ratings). Ratings of two jobs of the same model and
    ratings naming a job not stored are not counted.
    """
    params = (window or Window()).params()
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


def pairwise_counts_by_niche(reader: Warehouse, window: Window | None = None) -> dict[str, PairwiseCounts]:
    """Per niche, the PairwiseCounts of the stored ratings whose two jobs were both requested in
    ``window`` and belong to that niche (``sql/reports/pairwise_counts_niche.sql``)."""
    out: dict[str, PairwiseCounts] = {}
    for row in reader.query(sql_files.report("pairwise_counts_niche"), (window or Window()).params()).to_pylist():
        out.setdefault(row["niche"], PairwiseCounts()).pairs[(row["model_a"], row["model_b"])] = [
            int(row["a_wins"]), int(row["b_wins"]), int(row["ties"])]
    return out
