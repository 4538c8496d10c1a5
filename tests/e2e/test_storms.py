"""Storms: people before background work, priorities and merging in the outbox, and a storm
of new incidents in one channel as one digest message (the real bot, the fake Slack)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select

from bot.app.config import Config
from bot.incidents import lifecycle
from bot.queue import outbox
from bot.store import schema as t
from tests.fakes.bot_server import RunningBot, polled, run_bot
from tests.fakes.slack_api import (
    FakeSlack,
    SlackSender,
    event_callback,
    message_event,
    slack_settings,
)

CHANNEL = "C0STORM"


def group(i: int, status: str = "firing", service: str | None = None) -> dict[str, Any]:
    """Alertmanager's notification for group `i` (one alert)."""
    name = f"Storm{i:03d}"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": status,
        "receiver": "opsbot",
        "groupLabels": {"alertname": name},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": name,
                    "service": service or f"svc-{i % 3}",
                    "severity": ("critical", "warning")[i % 2],
                },
                "annotations": {"summary": f"{name} is failing"},
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": "2026-11-25T10:14:00Z"
                if status == "resolved"
                else "0001-01-01T00:00:00Z",
                "fingerprint": f"{i:016x}",
            }
        ],
    }


def slack_config(bot_config: Callable[..., Config], fake: FakeSlack, **extra: Any) -> Config:
    return bot_config(
        slack=slack_settings(fake), routes=[{"match": {}, "slack": [CHANNEL]}], **extra
    )


async def fire(bot: RunningBot, body: dict[str, Any]) -> str:
    resp = await bot.client.post("/webhooks/alertmanager", json=body)
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    return incident_id


async def until(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    """Poll `check` until it is truthy (the bot's own worker runs meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def status(bot: RunningBot, incident_id: str) -> str:
    return (await bot.client.get(f"/api/incidents/{incident_id}")).json()["status"]


async def pending(bot: RunningBot, kind: str) -> int:
    o = t.outbox.c
    async with bot.runtime.store.read() as conn:
        return int(
            await conn.scalar(select(func.count()).where(o.kind == kind, o.status == "pending"))
            or 0
        )


async def test_ack_from_slack_and_the_console_goes_before_thousands_of_diagnoses(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> None:
    queued = 3000
    async with run_bot(slack_config(bot_config, fake_slack), background_worker=True) as bot:
        in_slack, in_console = await fire(bot, group(1)), await fire(bot, group(2))

        async def root_ts() -> str | None:
            roots = [m for m in fake_slack.messages.values() if m.thread_ts is None]
            return next((m.ts for m in roots if "Storm001" in m.text), None)

        ts = await until(root_ts, 30, "the root of the first incident")
        async with bot.runtime.store.write() as conn:
            inc = await lifecycle.get(conn, in_console)
            jobs = [lifecycle.job_item("diagnose", inc) for _ in range(queued)]
            await conn.run_sync(outbox.enqueue_many, jobs)

        said = message_event("ack", channel=CHANNEL, ts="1700000099.000001", thread_ts=ts)
        assert (await SlackSender(bot.client).event(event_callback(said))).status_code == 200
        resp = await bot.client.post(f"/api/incidents/{in_console}/messages", json={"text": "ack"})
        assert resp.status_code < 300, resp.text

        left: dict[str, int] = {}
        for incident_id in (in_slack, in_console):

            async def acked(incident_id: str = incident_id) -> bool:
                if await status(bot, incident_id) != "acknowledged":
                    return False
                left[incident_id] = await pending(bot, "diagnose")
                return True

            await until(acked, 60, f"{incident_id} acknowledged")
        # each ack took effect while most of the diagnoses queued before it still waited
        assert min(left.values()) > queued // 2, left


async def test_a_diagnosis_finished_after_the_resolution_is_a_summary_in_the_thread(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> None:
    async with run_bot(slack_config(bot_config, fake_slack)) as bot:
        await fire(bot, group(1, service="checkout"))
        await fire(bot, group(1, "resolved", service="checkout"))

        def replies() -> list[str]:
            roots = [m for m in fake_slack.messages.values() if m.thread_ts is None]
            return [m.text for r in roots for m in fake_slack.thread(CHANNEL, r.ts)]

        await bot.wait_for(polled(lambda: len(replies()) >= 2), timeout_s=30, what="2 replies")
        (root,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
        said = replies()
        assert said[0].startswith("✅ Resolved"), said
        (late,) = [s for s in said if "Diagnosis" in s]
        assert "finished after the incident resolved" in late
        assert "Proposed action" not in late and "Check first" not in late
        assert "Resolved" in fake_slack.messages[(CHANNEL, root.ts)].text
