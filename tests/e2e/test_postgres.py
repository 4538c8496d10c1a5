"""The same store code and migrations on PostgreSQL (asyncpg): ingest, dedupe, conversation.

Each test gets a fresh database on the machine's server (the `pg_url` fixture).
"""

from __future__ import annotations

import asyncio

from bot.app.config import Config
from tests.fakes.bot_server import run_bot
from tests.payloads import alertmanager_notification


def firing(fingerprint: str, severity: str) -> dict:
    return alertmanager_notification(
        {"alertname": "HeapHigh", "service": "checkout", "severity": severity},
        {"summary": "checkout heap high"},
        group='{}:{alertname="HeapHigh"}',
        fingerprint=fingerprint,
    )


async def test_lifecycle_and_conversation_on_postgresql(pg_url: str) -> None:
    cfg = Config.model_validate(
        {
            "storage": {"url": pg_url},
            "services": {
                "checkout": {
                    "match": {"service": "checkout"},
                    "actions": {"restart": {"shell": ["true"]}},
                    "approval": "none",
                }
            },
        }
    )
    async with run_bot(cfg) as bot:
        first = await bot.client.post("/webhooks/alertmanager", json=firing("a1", "warning"))
        assert first.status_code == 200, first.text
        (incident_id,) = first.json()["incidents"]
        again = await bot.client.post("/webhooks/alertmanager", json=firing("a1", "warning"))
        assert again.json()["status"] == "duplicate"
        more = await bot.client.post("/webhooks/alertmanager", json=firing("a2", "critical"))
        assert more.json()["incidents"] == [incident_id]
        await bot.settle()

        await bot.client.post(f"/api/incidents/{incident_id}/messages", json={"text": "restart it"})
        await bot.settle()
        detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
        stats = (await bot.client.get("/stats")).json()

    assert (detail["alert_count"], detail["severity"], detail["short_id"]) == (2, "critical", 1)
    assert [a["state"] for a in detail["actions"]] == ["succeeded"]
    said = [m["text"] for m in detail["messages"] if m["author"] == "opsbot"]
    assert said[0].startswith("⚪ Diagnosis (offline")
    assert "▶️ Restarting checkout (asked by @console)." in said
    assert stats["diagnoses"]["offline"] == 1
    assert (stats["outbox"]["pending"], stats["outbox"]["failed"]) == (0, 0)


async def test_concurrent_deliveries_never_fail_or_double_count(pg_url: str) -> None:
    """Senders racing on one new group, and twins of one body in flight at once (PostgreSQL
    runs these transactions concurrently, SQLite one at a time)."""
    cfg = Config.model_validate({"storage": {"url": pg_url}})
    bodies = [firing(f"fp{i}", "warning") for i in range(12)]
    async with run_bot(cfg) as bot:
        answers = await asyncio.gather(
            *(bot.client.post("/webhooks/alertmanager", json=b) for b in bodies),
            *(bot.client.post("/webhooks/alertmanager", json=bodies[0]) for _ in range(4)),
        )
        (listed,) = (await bot.client.get("/api/incidents")).json()["incidents"]

    assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers]
    statuses = [a.json()["status"] for a in answers]
    assert statuses.count("duplicate") == 4  # five copies of body 0: one applied
    assert (listed["short_id"], listed["alert_count"]) == (1, 12)
