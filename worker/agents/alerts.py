"""The one agent on ``alerts.quality``: each batch is stored (``sentinel.alerts``), then its
alerts go to the webhook one batch behind, so a slow or dead webhook delays only notifications
(bounded attempts per alert; a give-up is counted and logged), never storage."""

from __future__ import annotations

from typing import Any, Sequence

import aiohttp

from contracts.errors import DecodeError
from warehouse import rows
from worker import codecs
from worker.delivery.commit import CommitProtocol
from worker.delivery.sends import OneBehind, dedup_token, write_until_stored
from worker.stages.dead_letters import DeadLetters, rejected_event
from worker.webhook import post_alert

NAME = "alerts"


class AlertsAgent:
    def __init__(self, runtime: Any, letters: DeadLetters, protocol: CommitProtocol, batch_wait_s: float) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self.letters = letters
        self.protocol = protocol
        self.batch_wait_s = batch_wait_s
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, stream: Any) -> None:
        notify = OneBehind()
        try:
            async for events in stream.take_events(100, within=self.batch_wait_s):
                alerts = await self.store(events)
                await notify.push(self.notify(events, alerts))
            await notify.drain()
        finally:
            notify.cancel()
            if self.session is not None:
                await self.session.close()

    async def store(self, events: Sequence[Any]) -> list[dict[str, Any]]:
        decoded, rejected, keys = [], [], []
        for ev in events:
            try:
                decoded.append(codecs.decode("QualityAlert", ev.value))
                keys.append((ev.message.partition, ev.message.offset))
            except DecodeError as exc:
                rejected.append(rejected_event(ev, exc))
        await self.letters.send(rejected)
        if decoded:
            table = rows.alert_rows(decoded)
            warehouse = self.rt.warehouse
            await write_until_stored(self.rt.sink_pool,
                                     lambda: warehouse.insert("sentinel.alerts", table, dedup_token("alerts", keys)),
                                     f"{len(decoded)} alerts", self.rt.metrics.sink_retries.inc)
            self.rt.metrics.rows_stored.labels("alerts").inc(len(decoded))
        return decoded

    async def notify(self, events: Sequence[Any], alerts: list[dict[str, Any]]) -> None:
        """Finished once every alert of the batch was posted or given up on."""
        with self.protocol.finished(NAME, events):
            if not self.settings.alert_webhook_url:
                return
            for alert in alerts:
                self.session = self.session or aiohttp.ClientSession()
                ok = await post_alert(self.session, self.settings.alert_webhook_url, alert,
                                      timeout_s=self.settings.alert_webhook_timeout_s,
                                      attempts=self.settings.alert_webhook_attempts)
                self.rt.metrics.webhook.labels("delivered" if ok else "failed").inc()
