"""Which pair a rater sees next: the least-rated model pair that still has an unrated job pair
(same niche and prompt), and the server-side book of pairs shown and answered."""

from __future__ import annotations

import random
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import sql as sql_files
from sentinel.human import PairwiseCounts
from warehouse.client import Warehouse
from warehouse.ratings import pairwise_counts


def pair_key(job_1: str, job_2: str) -> str:
    """Order-free key of a job pair, as rating_candidates.sql spells it."""
    lo, hi = sorted((job_1, job_2))
    return f"{lo}|{hi}"


def choose_candidate(candidates: Sequence[Mapping[str, Any]], rated: Mapping[tuple[str, str], int],
                     rng: random.Random) -> Mapping[str, Any] | None:
    """The model pair with the fewest ratings (``rated``: (model_1, model_2), model_1 < model_2)
    among those with a candidate, ties at random; then one of its candidates at random."""
    by_pair: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for c in candidates:
        by_pair.setdefault((c["model_1"], c["model_2"]), []).append(c)
    if not by_pair:
        return None
    fewest = min(rated.get(p, 0) for p in by_pair)
    pair = rng.choice(sorted(p for p in by_pair if rated.get(p, 0) == fewest))
    return rng.choice(by_pair[pair])


def rated_per_model_pair(counts: PairwiseCounts) -> dict[tuple[str, str], int]:
    return {pair: sum(v) for pair, v in counts.unordered().items()}


def next_pair(warehouse: Warehouse, exclude: Sequence[str], rng: random.Random, *,
              per_group: int = 3, per_model_pair: int = 20) -> Mapping[str, Any] | None:
    """One candidate (job_1, job_2, model_1, model_2, niche, prompt) by the scheduling rule,
    leaving out job pairs in ``exclude`` (pair_key form); None when nothing is left to rate."""
    counts, _ = pairwise_counts(warehouse, None)
    candidates = warehouse.query(sql_files.report("rating_candidates"), {
        "seed": rng.getrandbits(63), "per_group": per_group, "per_model_pair": per_model_pair,
        "exclude": list(exclude)}).to_pylist()
    return choose_candidate(candidates, rated_per_model_pair(counts), rng)


@dataclass(frozen=True)
class Pair:
    pair_id: str
    job_a: str
    job_b: str
    niche: str
    prompt: str
    issued_at: float


class PairBook:
    """Pairs shown and not yet answered (server-side: the page only has the random pair id;
    answerable for ``ttl_s``), and which job pairs to leave out of scheduling: those shown in
    the last ``recent_s`` seconds and not answered (another rater gets another pair) and those
    answered in the last ``recent_s`` (until the rating is stored and the SQL sees it)."""

    def __init__(self, *, max_pairs: int = 10_000, ttl_s: float = 86_400.0, recent_s: float = 600.0) -> None:
        self.max_pairs = max_pairs
        self.ttl_s = ttl_s
        self.recent_s = recent_s
        self.open: OrderedDict[str, Pair] = OrderedDict()
        self.recent: OrderedDict[str, float] = OrderedDict()  # pair_key -> answered at

    def _expire(self, now: float) -> None:
        while self.open and (len(self.open) > self.max_pairs or
                             next(iter(self.open.values())).issued_at < now - self.ttl_s):
            self.open.popitem(last=False)
        while self.recent and (len(self.recent) > self.max_pairs or next(iter(self.recent.values())) < now - self.recent_s):
            self.recent.popitem(last=False)

    def issue(self, job_a: str, job_b: str, niche: str, prompt: str, now: float | None = None) -> Pair:
        now = time.time() if now is None else now
        pair = Pair(secrets.token_urlsafe(18), job_a, job_b, niche, prompt, now)
        self.open[pair.pair_id] = pair
        self._expire(now)
        return pair

    def get(self, pair_id: str) -> Pair | None:
        return self.open.get(pair_id)

    def answer(self, pair_id: str, now: float | None = None) -> Pair | None:
        """Close a pair (one answer per pair id); None if unknown, expired or answered."""
        now = time.time() if now is None else now
        pair = self.open.pop(pair_id, None)
        if pair is not None:
            self.recent[pair_key(pair.job_a, pair.job_b)] = now
        self._expire(now)
        return pair

    def exclude(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        self._expire(now)
        shown = {pair_key(p.job_a, p.job_b) for p in self.open.values() if p.issued_at >= now - self.recent_s}
        return sorted(shown | set(self.recent))
