"""The rating page (worker/ratings.py): token check and a page naming no model and no job."""

from __future__ import annotations

from datetime import timezone


from worker.rating_pairs import PairBook
from worker.ratings import check_token, rater_token, render_page

UTC = timezone.utc
GOOD = {"rating_id": "r-1", "job_a": "job-1", "job_b": "job-2", "winner": "a", "rater": "alice",
        "time": "2026-01-05T09:00:00.123Z"}
UNREACHABLE = "127.0.0.1:1"  # publishing would fail loudly: these tests prove nothing is sent


def test_token_check() -> None:
    assert check_token("s3cret", "s3cret") is None
    assert check_token("s3cret", "")[0] == 401
    assert check_token("s3cret", "guess")[0] == 403
    assert check_token("", "")[0] == 403  # no token configured: the page is off, never open
    derived = rater_token("s3cret")
    assert derived != "s3cret" and derived == rater_token("s3cret") and derived != rater_token("other")
    assert check_token("s3cret", derived) is None
    assert check_token("other", derived)[0] == 403


def test_page_names_no_model_and_no_job() -> None:
    book = PairBook()
    pair = book.issue("job-secret-a", "job-secret-b", "headshot", "corporate <b>headshot</b>")
    page = render_page(pair=pair, token="tok", rater="ann & co")
    assert "job-secret" not in page
    assert page.count("<img ") == 2 and f"pair={pair.pair_id}" in page
    assert "corporate &lt;b&gt;headshot&lt;/b&gt;" in page and "ann &amp; co" in page
    assert 'value="a"' in page and 'value="b"' in page and 'value="tie"' in page
    assert "http://" not in page and "https://" not in page, "self-contained: no external assets"
    empty = render_page(pair=None, token="tok", rater="ann")
    assert "Nothing to rate" in empty and "<img" not in empty
