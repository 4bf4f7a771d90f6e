"""Deliver quality alerts to a Slack-compatible webhook: bounded retries, a timeout, and never
an exception into the stream — a dead webhook must not hold up scoring or storage."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


def slack_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook JSON (``text`` plus fields; other tools accept the same shape)."""
    firing = alert["state"] == "firing"
    icon = ":rotating_light:" if firing else ":white_check_mark:"
    drop = (alert["current"] - alert["baseline"]) / alert["baseline"] * 100 if alert["baseline"] else 0.0
    text = (f"{icon} Quality drift {alert['state']}: {alert['model_id']} / {alert['niche']} — "
            f"{alert['metric']} {alert['current']:.2f} vs baseline {alert['baseline']:.2f} ({drop:+.1f}%)")
    return {
        "text": text,
        "attachments": [{
            "color": "#d1242f" if firing else "#1a7f37",
            "fields": [
                {"title": "incident", "value": alert["alert_id"], "short": True},
                {"title": "window", "value": alert["window"], "short": True},
                {"title": "samples", "value": str(alert["samples"]), "short": True},
                {"title": "detector", "value": alert["detector"], "short": False},
                {"title": "at", "value": alert["at"].isoformat(), "short": True},
            ],
        }],
    }


async def post_alert(session: aiohttp.ClientSession, url: str, alert: dict[str, Any], *,
                     timeout_s: float = 5.0, attempts: int = 3, backoff_s: float = 0.5) -> bool:
    """POST one alert; True when the receiver answered 2xx. Failures are logged, not raised."""
    payload = slack_payload(alert)
    for attempt in range(1, attempts + 1):
        try:
            async with session.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                if 200 <= response.status < 300:
                    return True
                problem = f"HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            problem = type(exc).__name__
        # the URL is a secret (it embeds a token): never log it
        log.warning("alert %s webhook attempt %d/%d failed: %s", alert["alert_id"], attempt, attempts, problem)
        if attempt < attempts:
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
    return False
