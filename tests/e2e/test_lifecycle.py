"""Incident lifecycle over real webhooks: grouping, repeats, resolution, re-opening, a new
incident after the re-open window, idempotent re-delivery, and the generic webhook's keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, run_bot

GROUP = '{}:{alertname="HighLatency", service="checkout"}'
REFIRED_AT = "2026-11-25T11:00:00Z"  # a re-fire is a new alert instance: new startsAt
LIFECYCLE = frozenset({"triggered", "acknowledged", "resolved", "reopened"})


def am_alert(
    fingerprint: str,
    status: str = "firing",
    severity: str = "warning",
    starts_at: str = "2026-11-25T10:00:00Z",
) -> dict:
    return {
        "status": status,
        "labels": {
            "alertname": "HighLatency",
            "service": "checkout",
            "severity": severity,
            "instance": f"pod-{fingerprint}",
        },
        "annotations": {"summary": "checkout p99 latency above 2s"},
        "startsAt": starts_at,
        "endsAt": "2026-11-25T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict, group: str = GROUP) -> dict:
    """An Alertmanager v4 notification of one group, as Alertmanager sends it."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "opsbot",
        "groupLabels": {"alertname": "HighLatency", "service": "checkout"},
        "commonLabels": {"alertname": "HighLatency", "service": "checkout"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


async def post(bot: RunningBot, body: dict, path: str = "/webhooks/alertmanager") -> dict:
    resp = await bot.client.post(path, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def incidents(bot: RunningBot) -> list[dict[str, Any]]:
    return (await bot.client.get("/api/incidents")).json()["incidents"]


async def detail(bot: RunningBot, incident_id: str) -> dict[str, Any]:
    resp = await bot.client.get(f"/api/incidents/{incident_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def kinds(inc: dict[str, Any]) -> list[str]:
    """The incident's state changes in its timeline (diagnoses and notes left out)."""
    return [e["kind"] for e in inc["timeline"] if e["kind"] in LIFECYCLE]


async def test_one_group_is_one_incident_with_highest_severity(bot: RunningBot) -> None:
    first = await post(bot, notification(am_alert("a1")))
    assert first["opened"] == 1
    (incident_id,) = first["incidents"]

    second = await post(bot, notification(am_alert("a1"), am_alert("a2", severity="critical")))
    assert second["incidents"] == [incident_id]
    assert (second["opened"], second["updated"]) == (0, 1)

    (inc,) = await incidents(bot)
    assert inc["id"] == incident_id
    assert (inc["alert_count"], inc["severity"], inc["status"]) == (2, "critical", "triggered")

    # Severity stays the highest seen among the group's alerts, even if a later one is lower.
    await post(bot, notification(am_alert("a3", severity="info")))
    (inc,) = await incidents(bot)
    assert (inc["alert_count"], inc["severity"]) == (3, "critical")


async def test_repeat_updates_the_root_message_instead_of_posting_again(bot: RunningBot) -> None:
    (incident_id,) = (await post(bot, notification(am_alert("a1"))))["incidents"]
    await bot.settle()
    repeat = notification(am_alert("a1"))
    repeat["externalURL"] = "http://alertmanager-2:9093"  # a re-send from the HA peer
    assert (await post(bot, repeat))["updated"] == 1
    await bot.settle()

    inc = await detail(bot, incident_id)
    assert inc["alert_count"] == 1
    assert kinds(inc) == ["triggered"]
    assert inc["threads"] == [
        {"platform": "console", "channel": "console", "thread_id": incident_id}
    ]
    assert len(await incidents(bot)) == 1


async def test_resolves_only_when_every_alert_of_the_group_is_resolved(bot: RunningBot) -> None:
    (incident_id,) = (await post(bot, notification(am_alert("a1"), am_alert("a2"))))["incidents"]

    partial = await post(bot, notification(am_alert("a1", "resolved"), am_alert("a2")))
    assert partial["resolved"] == 0
    inc = await detail(bot, incident_id)
    assert (inc["status"], inc["resolved_at"]) == ("triggered", None)

    done = await post(bot, notification(am_alert("a1", "resolved"), am_alert("a2", "resolved")))
    assert done["resolved"] == 1
    await bot.settle()
    inc = await detail(bot, incident_id)
    assert inc["status"] == "resolved"
    assert inc["resolved_at"] is not None
    assert inc["resolved_by"] == "alertmanager"
    assert kinds(inc) == ["triggered", "resolved"]
    assert any(m["text"].startswith("✅ Resolved") for m in inc["messages"])
    stats = (await bot.client.get("/stats")).json()
    assert stats["incidents"] == {"triggered": 0, "acknowledged": 0, "resolved": 1}
    assert stats["mttr_s"] is not None


async def test_resolution_of_an_unknown_group_opens_nothing(bot: RunningBot) -> None:
    result = await post(bot, notification(am_alert("zz", "resolved")))
    assert result["incidents"] == []
    assert await incidents(bot) == []


async def test_refire_within_the_window_reopens_the_same_incident(bot: RunningBot) -> None:
    (incident_id,) = (await post(bot, notification(am_alert("a1"))))["incidents"]
    await post(bot, notification(am_alert("a1", "resolved")))
    assert (await detail(bot, incident_id))["status"] == "resolved"

    again = await post(bot, notification(am_alert("a1", starts_at=REFIRED_AT)))
    assert (again["reopened"], again["opened"], again["incidents"]) == (1, 0, [incident_id])
    await bot.settle()
    inc = await detail(bot, incident_id)
    assert (inc["status"], inc["resolved_at"], inc["short_id"]) == ("triggered", None, 1)
    assert kinds(inc) == ["triggered", "resolved", "reopened"]
    assert any("Re-opened" in m["text"] for m in inc["messages"])
    assert len(await incidents(bot)) == 1


async def test_refire_after_the_window_opens_a_new_incident(
    bot_config: Callable[..., Config],
) -> None:
    async with run_bot(bot_config(webhooks={"reopen_window_s": 0})) as bot:
        (first_id,) = (await post(bot, notification(am_alert("a1"))))["incidents"]
        await post(bot, notification(am_alert("a1", "resolved")))

        again = await post(bot, notification(am_alert("a1", starts_at=REFIRED_AT)))
        assert (again["opened"], again["reopened"]) == (1, 0)
        (second_id,) = again["incidents"]
        assert second_id != first_id

        first, second = await detail(bot, first_id), await detail(bot, second_id)
        assert first["status"] == "resolved"
        assert kinds(first) == ["triggered", "resolved"]
        assert (second["status"], second["short_id"], second["alert_count"]) == ("triggered", 2, 1)
        assert kinds(second) == ["triggered"]


async def counted(bot: RunningBot) -> dict[str, Any]:
    """/stats without the outbox worker's lag (it grows by itself while items wait)."""
    stats = (await bot.client.get("/stats")).json()
    del stats["outbox"]["lag_s"]
    return stats


async def test_same_body_twice_is_a_duplicate_that_changes_nothing(bot: RunningBot) -> None:
    body = notification(am_alert("a1"), am_alert("a2", severity="critical"))
    first = await post(bot, body)
    (incident_id,) = first["incidents"]
    before = (await detail(bot, incident_id), await counted(bot))

    second = await post(bot, body)
    assert second == {"status": "duplicate", "incidents": []}
    assert (await detail(bot, incident_id), await counted(bot)) == before

    # A resolved notification re-sent after the incident resolved is a duplicate too.
    resolved = notification(am_alert("a1", "resolved"), am_alert("a2", "resolved"))
    assert (await post(bot, resolved))["resolved"] == 1
    assert (await post(bot, resolved))["status"] == "duplicate"
    assert kinds(await detail(bot, incident_id)) == ["triggered", "resolved"]


async def test_generic_webhook_keys_by_incident_id(bot: RunningBot) -> None:
    body = {"incident_id": "INC-7", "service": "payments", "alert_type": "5xx", "severity": "p1"}
    (incident_id,) = (await post(bot, body, "/webhooks/generic"))["incidents"]
    moved = {**body, "service": "billing", "alert_type": "latency", "logs": "timeout\nretry"}
    assert (await post(bot, moved, "/webhooks/generic"))["incidents"] == [incident_id]

    (inc,) = await incidents(bot)
    assert (inc["source"], inc["severity"], inc["service"]) == ("generic", "critical", "payments")

    closed = await post(bot, {**body, "status": "resolved"}, "/webhooks/generic")
    assert closed["resolved"] == 1
    assert (await detail(bot, incident_id))["status"] == "resolved"


async def test_generic_webhook_keys_by_service_and_alert_type(bot: RunningBot) -> None:
    a = {"service": "payments", "alert_type": "5xx", "severity": "warning", "region": "eu"}
    (first,) = (await post(bot, a, "/webhooks/generic"))["incidents"]
    repeat = {**a, "logs": ["ERROR upstream 503"], "timestamp": 1764064800}
    assert (await post(bot, repeat, "/webhooks/generic"))["incidents"] == [first]
    other = {**a, "alert_type": "latency"}
    (second,) = (await post(bot, other, "/webhooks/generic"))["incidents"]
    assert second != first

    listed = {i["id"]: i for i in await incidents(bot)}
    assert set(listed) == {first, second}
    assert listed[first]["labels"]["region"] == "eu"
    assert listed[first]["service"] == "payments"


async def test_generic_sender_repeating_its_static_body_after_resolution_reopens(
    bot: RunningBot,
) -> None:
    # A cron check that posts the same JSON whenever it fails, and {"status": "ok"} when well.
    failing = {"service": "payments", "alert_type": "disk_full", "severity": "high"}
    (incident_id,) = (await post(bot, failing, "/webhooks/generic"))["incidents"]
    assert (await post(bot, {**failing, "status": "ok"}, "/webhooks/generic"))["resolved"] == 1

    again = await post(bot, failing, "/webhooks/generic")
    assert again["status"] == "ok", "the second outage was dropped as a duplicate delivery"
    assert again["incidents"] == [incident_id]
    assert (await detail(bot, incident_id))["status"] == "triggered"
