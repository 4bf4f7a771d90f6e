"""Which pair a rater sees next (worker/rating_pairs.py): the scheduling rule and the pair book."""

from __future__ import annotations

import random
from datetime import timezone


from worker.rating_pairs import PairBook, choose_candidate, pair_key

UTC = timezone.utc
GOOD = {"rating_id": "r-1", "job_a": "job-1", "job_b": "job-2", "winner": "a", "rater": "alice",
        "time": "2026-01-05T09:00:00.123Z"}
UNREACHABLE = "127.0.0.1:1"  # publishing would fail loudly: these tests prove nothing is sent


def test_scheduler_picks_the_least_rated_model_pair_with_candidates() -> None:
    def cand(m1, m2, n):
        return {"job_1": f"{m1}-{n}", "job_2": f"{m2}-{n}", "model_1": m1, "model_2": m2}

    candidates = [cand("m1", "m2", i) for i in range(5)] + [cand("m1", "m3", i) for i in range(3)]
    rated = {("m1", "m2"): 4, ("m1", "m3"): 6, ("m2", "m3"): 0}  # m2/m3 has fewest but no candidate
    picks = [choose_candidate(candidates, rated, random.Random(s)) for s in range(50)]
    assert {(p["model_1"], p["model_2"]) for p in picks} == {("m1", "m2")}
    assert len({p["job_1"] for p in picks}) > 1, "candidates of the pair are drawn at random"
    tied = {("m1", "m2"): 2, ("m1", "m3"): 2}
    picked = {(p["model_1"], p["model_2"]) for p in (choose_candidate(candidates, tied, random.Random(s))
                                                      for s in range(50))}
    assert picked == {("m1", "m2"), ("m1", "m3")}
    assert choose_candidate([], rated, random.Random(0)) is None


def test_pair_book_one_answer_per_pair() -> None:
    book = PairBook(recent_s=600)
    pair = book.issue("job-b", "job-a", "headshot", "a prompt", now=1000.0)
    assert book.get(pair.pair_id) == pair and len(pair.pair_id) >= 20
    assert book.exclude(now=1000.5) == [pair_key("job-a", "job-b")] == ["job-a|job-b"]
    assert book.answer(pair.pair_id, now=1001.0) == pair
    assert book.answer(pair.pair_id, now=1002.0) is None  # a second submit publishes nothing
    assert book.get(pair.pair_id) is None
    assert book.exclude(now=1100.0) == ["job-a|job-b"], "answered pairs stay excluded until stored"
    assert book.exclude(now=1700.0) == []
    old = PairBook(ttl_s=10)
    stale = old.issue("x", "y", "n", "p", now=0.0)
    old.issue("z", "w", "n", "p", now=100.0)
    assert old.get(stale.pair_id) is None
