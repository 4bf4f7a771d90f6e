"""Every topic name of the pipeline, in one place (data-flow order), and the dead-letter rule."""

JOBS_COMPLETED = "jobs.completed"  # inference nodes -> worker (key: job id)
JOBS_SCORED = "jobs.scored"  # worker -> store and drift (key: model|niche)
RATINGS = "ratings.pairwise"  # human A/B ratings (key: rating id)
ALERTS = "alerts.quality"  # drift detectors -> store and webhook (key: alert id)


def dlq_name(topic: str) -> str:
    """The dead-letter topic of ``topic``: records that could not be used, with reason headers."""
    return f"{topic}.dlq"
