"""Every named sender's documented bodies over real HTTP: each opens the right incident, a
repeat groups into it, and the sender's recovery resolves it, at `/webhooks/<sender>` and,
recognised by shape, at `/webhooks/generic`. Plus what the generic endpoint accepts and
refuses, lenient Alertmanager bodies, custom mappings, auth and size limits."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from bot.app.config import Config
from bot.store import schema as t
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.processes import BotProcesses

BODIES = Path(__file__).resolve().parents[1] / "alert_bodies"


def body(name: str) -> Any:
    return json.loads((BODIES / name).read_text())


async def _alert_starts(bot: RunningBot, incident_id: str) -> list[str]:
    """When the sender said each alert of an incident started (UTC, as stored)."""
    async with bot.runtime.store.read() as conn:
        rows = await conn.execute(
            select(t.alerts.c.starts_at).where(t.alerts.c.incident_id == incident_id)
        )
        return [r.starts_at.replace(tzinfo=None).isoformat() for r in rows]


@dataclass(frozen=True)
class Case:
    fire: str
    resolve: str
    title: str
    severity: str
    service: str | None
    alerts: int = 1

    @property
    def sender(self) -> str:
        return self.fire.split("/")[0]


CASES = [
    Case(
        "grafana/unified-firing.json",
        "grafana/unified-resolved.json",
        "High memory usage: This alert was triggered for zone us-1",
        "warning",
        None,
        alerts=2,
    ),
    Case(
        "grafana/legacy-alerting.json",
        "grafana/legacy-ok.json",
        "Panel Title alert: Notification Message",
        "warning",
        None,
    ),
    Case(
        "azure/common-fired.json",
        "azure/common-resolved.json",
        "WCUS-R2-Gen2",
        "info",
        "wcus-r2-gen2",
    ),
    Case(
        "azure/classic-activated.json",
        "azure/classic-resolved.json",
        "ruleName1: some description",
        "warning",
        "mysite1",
    ),
    Case(
        "gcp/incident-open.json",
        "gcp/incident-closed.json",
        "Monitor-Project-Cluster: ALERT - No severity",
        "critical",
        "gke-cluster-1-default-pool-e2df4cbd-dgp3",
    ),
    Case(
        "datadog/triggered.json",
        "datadog/recovered.json",
        "CPU load is very high",
        "critical",
        "checkout",
    ),
    Case(
        "datadog/default-triggered.json",
        "datadog/default-recovered.json",
        "Disk almost full",
        "warning",
        None,
    ),
    Case(
        "newrelic/workflow-activated.json",
        "newrelic/workflow-closed.json",
        "checkout-api query result is > 5.0 for 5 minutes on 'Error rate'",
        "critical",
        "checkout-api",
    ),
    Case(
        "newrelic/legacy-open.json",
        "newrelic/legacy-closed.json",
        "High error percentage: Error percentage > 5.0% for at least 5 minutes on 'checkout'",
        "critical",
        "checkout",
    ),
    Case(
        "pingdom/down.json",
        "pingdom/up.json",
        "Name of HTTP check: Short error message",
        "critical",
        "Name of HTTP check",
    ),
    Case(
        "sentry/event-alert-triggered.json",
        "sentry/issue-resolved.json",
        "ZeroDivisionError: division by zero",
        "critical",
        None,
    ),
    Case(
        "sentry/metric-alert-critical.json",
        "sentry/metric-alert-resolved.json",
        "Too many errors: 1000 events in the last 10 minutes",
        "critical",
        None,
    ),
    Case(
        "zabbix/problem.json",
        "zabbix/resolved.json",
        "High CPU utilization (over 90% for 5m)",
        "critical",
        "checkout",  # its event tag service:checkout, before the host
    ),
    Case(
        "opsgenie/create.json",
        "opsgenie/close.json",
        "checkout p99 latency above 2s",
        "critical",
        "checkout",
    ),
    Case(
        "pagerduty/events-v2-trigger.json",
        "pagerduty/events-v2-resolve.json",
        "DISK at 99% on machine prod-datapipe03.example.com",
        "critical",
        "mysql",
    ),
    Case(
        "pagerduty/webhook-v3-triggered.json",
        "pagerduty/webhook-v3-resolved.json",
        "A little bump in the road",
        "critical",
        "API Service",
    ),
]


def test_every_body_on_disk_is_exercised() -> None:
    used = {name for case in CASES for name in (case.fire, case.resolve)}
    on_disk = {str(p.relative_to(BODIES)) for p in BODIES.glob("*/*.json")}
    assert on_disk == used


@pytest.mark.parametrize("endpoint", ["named", "generic"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.fire.removesuffix(".json"))
async def test_sender_body_opens_groups_and_resolves_its_incident(
    bot: RunningBot, case: Case, endpoint: str
) -> None:
    url = f"/webhooks/{case.sender}" if endpoint == "named" else "/webhooks/generic"
    fired = await bot.client.post(url, json=body(case.fire))
    assert fired.status_code == 200, fired.text
    assert fired.json()["opened"] == 1
    [incident_id] = fired.json()["incidents"]
    opened = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert opened["title"] == case.title
    assert opened["severity"] == case.severity
    assert opened["service"] == case.service
    assert opened["source"] == case.sender

    again = await bot.client.post(url, json=body(case.fire))
    assert again.status_code == 200, again.text
    assert again.json()["incidents"] in ([], [incident_id])  # a duplicate, or an update

    resolved = await bot.client.post(url, json=body(case.resolve))
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["incidents"] == [incident_id]
    assert resolved.json()["resolved"] == 1

    incidents = (await bot.client.get("/api/incidents")).json()["incidents"]
    assert [i["id"] for i in incidents] == [incident_id]
    [incident] = incidents
    assert incident["status"] == "resolved"
    assert incident["title"] == case.title
    assert incident["alert_count"] == case.alerts


async def test_two_senders_never_share_an_incident(bot: RunningBot) -> None:
    for case in CASES:
        resp = await bot.client.post(f"/webhooks/{case.sender}", json=body(case.fire))
        assert resp.status_code == 200, (case.fire, resp.text)
    incidents = (await bot.client.get("/api/incidents")).json()["incidents"]
    assert len(incidents) == len(CASES)


async def test_an_incident_stored_as_high_reads_as_critical_and_keeps_working(
    bot: RunningBot,
) -> None:
    """Rows written when `high` was a fourth level: shown as critical, updated and resolved."""
    fired = await bot.client.post("/webhooks/zabbix", json=body("zabbix/problem.json"))
    [incident_id] = fired.json()["incidents"]
    async with bot.runtime.store.write() as conn:
        for table in (t.incidents, t.alerts):
            await conn.execute(update(table).values(severity="high"))
    incident = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert incident["severity"] == "critical"
    changed = {**body("zabbix/problem.json"), "event_nseverity": "2", "event_severity": "Warning"}
    again = await bot.client.post("/webhooks/zabbix", json=changed)
    assert again.status_code == 200, again.text
    resolved = await bot.client.post("/webhooks/zabbix", json=body("zabbix/resolved.json"))
    assert (resolved.json()["incidents"], resolved.json()["resolved"]) == ([incident_id], 1)


# ---- /webhooks/generic accepts what people send, refuses only non-alerts -------------------


async def test_generic_takes_a_bare_message_and_its_resolution(bot: RunningBot) -> None:
    fired = await bot.client.post("/webhooks/generic", json={"message": "backup job failed"})
    assert fired.status_code == 200, fired.text
    [incident_id] = fired.json()["incidents"]
    again = await bot.client.post("/webhooks/generic", json={"message": "backup job failed"})
    assert again.json()["incidents"] == [incident_id]
    done = await bot.client.post(
        "/webhooks/generic", json={"message": "backup job failed", "status": "ok"}
    )
    assert done.json()["resolved"] == 1
    incident = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert (incident["title"], incident["status"]) == ("backup job failed", "resolved")


async def test_generic_takes_a_kapacitor_alert_with_its_level(bot: RunningBot) -> None:
    alert = {
        "id": "cpu:host=web-1",
        "message": "cpu:host=web-1 is CRITICAL",
        "details": "<b>cpu</b>",
        "time": "2026-11-20T10:00:00Z",
        "duration": 0,
        "level": "CRITICAL",
        "previousLevel": "OK",
    }
    fired = await bot.client.post("/webhooks/generic", json=alert)
    assert fired.status_code == 200, fired.text
    [incident_id] = fired.json()["incidents"]
    incident = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert (incident["title"], incident["severity"]) == ("cpu:host=web-1 is CRITICAL", "critical")
    assert await _alert_starts(bot, incident_id) == ["2026-11-20T10:00:00"]
    ok = {**alert, "level": "OK", "time": "2026-11-20T10:05:00Z", "message": "cpu is OK"}
    assert (await bot.client.post("/webhooks/generic", json=ok)).json()["resolved"] == 1


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1763632800, "2025-11-20T10:00:00"),
        (1763632800123, "2025-11-20T10:00:00.123000"),
        ("2025-11-20T11:00:00+01:00", "2025-11-20T10:00:00"),
    ],
)
async def test_generic_timestamps_in_seconds_milliseconds_or_iso(
    bot: RunningBot, timestamp: object, expected: str
) -> None:
    resp = await bot.client.post(
        "/webhooks/generic", json={"service": "cart", "timestamp": timestamp}
    )
    assert resp.status_code == 200, resp.text
    [incident_id] = resp.json()["incidents"]
    assert await _alert_starts(bot, incident_id) == [expected]


@pytest.mark.parametrize("doc", [{}, {"foo": 1}, {"severity": "high", "host": "db-1"}])
async def test_generic_refuses_a_non_alert_naming_the_fields_it_looked_for(
    bot: RunningBot, doc: dict[str, Any]
) -> None:
    resp = await bot.client.post("/webhooks/generic", json=doc)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert "not an alert" in error
    for field in ("title", "name", "alertname", "ruleName", "summary", "message", "subject"):
        assert field in error


async def test_generic_sends_sns_deliveries_to_their_verifying_endpoint(bot: RunningBot) -> None:
    envelope = {"Type": "Notification", "TopicArn": "arn:aws:sns:x", "Signature": "forged"}
    resp = await bot.client.post("/webhooks/generic", json={**envelope, "Message": "hi"})
    assert resp.status_code == 422
    assert "/webhooks/sns" in resp.json()["error"]
    assert (await bot.client.get("/api/incidents")).json()["incidents"] == []


async def test_an_unknown_sender_is_404_naming_the_known_ones(bot: RunningBot) -> None:
    resp = await bot.client.post("/webhooks/nagios", json={"message": "x"})
    assert resp.status_code == 404
    assert "grafana" in resp.json()["error"] and "zabbix" in resp.json()["error"]


# ---- lenient Alertmanager --------------------------------------------------------------------


def _am_v3() -> dict[str, Any]:
    """An Alertmanager version-3 body as Alerta's webhook tests post it: a numeric groupKey,
    no fingerprints."""
    return {
        "alerts": [
            {
                "annotations": {"description": "Connect to host2 fails", "summary": "Connect fail"},
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.host:9090/...",
                "labels": {
                    "alertname": "failedConnect",
                    "instance": "host2",
                    "job": "pinger",
                    "service": "System",
                    "severity": "critical",
                },
                "startsAt": "2016-08-01T13:27:08.008+03:00",
                "status": "firing",
            }
        ],
        "commonAnnotations": {"summary": "Connect fail"},
        "commonLabels": {"alertname": "failedConnect", "job": "pinger", "severity": "critical"},
        "externalURL": "http://alertmanager.host:9093",
        "groupKey": 5615590933959184469,
        "groupLabels": {"alertname": "failedConnect"},
        "receiver": "alerta",
        "status": "firing",
        "version": "3",
    }


async def test_alertmanager_version_3_with_a_numeric_group_key(bot: RunningBot) -> None:
    resp = await bot.client.post("/webhooks/alertmanager", json=_am_v3())
    assert resp.status_code == 200, resp.text
    [incident_id] = resp.json()["incidents"]
    incident = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert incident["title"] == "failedConnect: Connect fail"


@pytest.mark.parametrize(
    ("drop", "key_from"),
    [
        ({"groupKey"}, "groupLabels"),
        ({"groupKey", "groupLabels"}, "commonLabels"),
        ({"groupKey", "groupLabels", "commonLabels"}, "alert names"),
    ],
)
async def test_alertmanager_without_group_key_groups_and_resolves(
    bot: RunningBot, drop: set[str], key_from: str
) -> None:
    fired = {k: v for k, v in _am_v3().items() if k not in drop}
    first = await bot.client.post("/webhooks/alertmanager", json=fired)
    assert first.status_code == 200, (key_from, first.text)
    [incident_id] = first.json()["incidents"]
    # The recovery: the notification says resolved, its alert has no status of its own.
    recovered = json.loads(json.dumps(fired))
    recovered["status"] = "resolved"
    del recovered["alerts"][0]["status"]
    recovered["alerts"][0]["endsAt"] = "2016-08-01T13:37:08.008+03:00"
    done = await bot.client.post("/webhooks/alertmanager", json=recovered)
    assert done.json()["incidents"] == [incident_id], key_from
    assert done.json()["resolved"] == 1


# ---- custom mappings ---------------------------------------------------------------------------

UPTIME = {
    "title": "{{ payload.check.name }}",
    "status": "{{ payload.check.state }}",
    "resolved_when": ["up"],
    "severity": "{{ payload.importance }}",
    "service": "{{ payload.check.service }}",
    "dedup_key": "{{ payload.check.id }}",
    "url": "{{ payload.check.url }}",
    "timestamp": "{{ payload.changed_at }}",
    "labels": {"team": "{{ payload.team | default('web') }}"},
}


TOKEN = "s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def mapped_bot(bot_config: Callable[..., Config]) -> AsyncIterator[RunningBot]:
    cfg = bot_config(webhooks={"token": TOKEN, "mappings": {"uptime": UPTIME}})
    async with run_bot(cfg) as running:
        yield running


async def test_custom_mapping_opens_and_resolves_from_any_json(mapped_bot: RunningBot) -> None:
    check = {"id": 77, "name": "homepage down", "state": "down", "service": "www"}
    down = {"check": {**check, "url": "https://status.example.com/77"}, "importance": "Sev1"}
    fired = await mapped_bot.client.post(
        "/webhooks/custom/uptime", json={**down, "changed_at": 1763632800000}, headers=AUTH
    )
    assert fired.status_code == 200, fired.text
    [incident_id] = fired.json()["incidents"]
    incident = (await mapped_bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert incident["severity"] == "critical"
    assert incident["labels"]["source_severity"] == "Sev1"
    assert await _alert_starts(mapped_bot, incident_id) == ["2025-11-20T10:00:00"]
    up = {"check": {**check, "state": "UP"}, "changed_at": 1763633400000}
    done = await mapped_bot.client.post("/webhooks/custom/uptime", json=up, headers=AUTH)
    assert (done.json()["incidents"], done.json()["resolved"]) == ([incident_id], 1)
    incident = (await mapped_bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert incident["title"] == "homepage down"
    assert incident["service"] == "www"
    assert incident["labels"]["team"] == "web"
    assert incident["source"] == "custom/uptime"


async def test_custom_mapping_refuses_a_body_without_its_title(mapped_bot: RunningBot) -> None:
    resp = await mapped_bot.client.post(
        "/webhooks/custom/uptime", json={"check": {"id": 1}}, headers=AUTH
    )
    assert resp.status_code == 422
    assert "webhooks.mappings.uptime.title" in resp.json()["error"]


async def test_custom_mapping_unknown_name_is_404(mapped_bot: RunningBot) -> None:
    resp = await mapped_bot.client.post("/webhooks/custom/nagios", json={"x": 1}, headers=AUTH)
    assert resp.status_code == 404
    assert "webhooks.mappings.nagios" in resp.json()["error"]


# ---- auth and limits apply to every new endpoint ------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/webhooks/grafana", "/webhooks/pagerduty", "/webhooks/custom/uptime", "/webhooks/x"]
)
@pytest.mark.parametrize("auth", [None, "Bearer wrong"])
async def test_new_endpoints_need_the_webhook_token(
    mapped_bot: RunningBot, path: str, auth: str | None
) -> None:
    headers = {"authorization": auth} if auth else {}
    resp = await mapped_bot.client.post(
        path, json=body("grafana/legacy-alerting.json"), headers=headers
    )
    assert resp.status_code == 401, resp.text


def _url_with_userinfo(bot: RunningBot, userinfo: str, path: str) -> str:
    return bot.url.replace("http://", f"http://{userinfo}@") + path


@pytest.mark.parametrize(
    "how",
    ["bearer", "basic password", "userinfo user:token", "query"],
)
async def test_senders_without_headers_give_the_token_by_basic_auth_or_query(
    mapped_bot: RunningBot, how: str
) -> None:
    """Azure action groups and Google Cloud channels take `https://user:token@host/...`
    (HTTP Basic); Grafana OnCall- and Opsgenie-style URLs carry `?token=`."""
    path, doc = "/webhooks/grafana", body("grafana/legacy-alerting.json")
    client = mapped_bot.client
    if how == "bearer":
        resp = await client.post(path, json=doc, headers=AUTH)
    elif how == "basic password":
        resp = await client.post(path, json=doc, auth=("azure", TOKEN))
    elif how == "userinfo user:token":
        resp = await client.post(_url_with_userinfo(mapped_bot, f"gcp:{TOKEN}", path), json=doc)
    else:
        resp = await client.post(path, json=doc, params={"token": TOKEN})
    assert resp.status_code == 200, resp.text
    assert resp.json()["opened"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Basic " + base64.b64encode(b"azure:wrong").decode()},
        {"authorization": "Basic " + base64.b64encode(TOKEN.encode()).decode()},  # no colon
        {"authorization": "Basic !!not-base64!!"},
        {"authorization": "Basic " + base64.b64encode(f"{TOKEN}:wrong".encode()).decode()},
        {"authorization": f"Token {TOKEN}"},
        {"authorization": "Bearer s3creét".encode()},  # not ASCII: still just wrong
    ],
)
async def test_a_wrong_basic_or_query_token_is_401(
    mapped_bot: RunningBot, headers: dict[str, str | bytes]
) -> None:
    path, doc = "/webhooks/grafana", body("grafana/legacy-alerting.json")
    resp = await mapped_bot.client.post(path, json=doc, headers=headers)
    assert resp.status_code == 401, resp.text
    assert "Basic" in resp.headers["www-authenticate"]
    wrong = await mapped_bot.client.post(path, json=doc, params={"token": TOKEN + "x"})
    assert wrong.status_code == 401, wrong.text


async def test_a_query_token_never_reaches_the_log(
    bot_processes: BotProcesses, tmp_path: Path
) -> None:
    """A real `opsbot run` at DEBUG: deliveries with `?token=` (right, wrong, refused body)
    leave the token in no log line."""
    secret = "qry-Tok3n-never-logged-8f2c"
    config = {
        "storage": {"url": f"sqlite:///{tmp_path / 'opsbot.db'}"},
        "webhooks": {"token": secret},
    }
    proc = await bot_processes.start("solo", config, env={"OPSBOT_LOG_LEVEL": "DEBUG"})
    await bot_processes.ready(proc)
    doc = body("grafana/legacy-alerting.json")
    async with httpx.AsyncClient(base_url=proc.url, timeout=10) as client:
        for token, sent, status in (
            (secret, doc, 200),
            (secret + "-wrong", doc, 401),
            (secret, {"nothing": "here"}, 422),
        ):
            resp = await client.post("/webhooks/generic", params={"token": token}, json=sent)
            assert resp.status_code == status, resp.text
    await proc.stop()
    log = proc.log_text()
    assert "opsbot.stopped" in log  # the log is the process's own, to its end
    assert secret not in log


@pytest.mark.parametrize("path", ["/webhooks/azure", "/webhooks/custom/uptime"])
async def test_new_endpoints_refuse_oversized_and_non_json_bodies(
    mapped_bot: RunningBot, path: str
) -> None:
    huge = json.dumps({"message": "x" * (1024 * 1024 + 10)}).encode()
    json_type = {"content-type": "application/json", **AUTH}
    assert (await mapped_bot.client.post(path, content=huge, headers=json_type)).status_code == 413
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    assert (await mapped_bot.client.post(path, content=deep, headers=json_type)).status_code == 400
    text = {"content-type": "text/plain", **AUTH}
    assert (await mapped_bot.client.post(path, content=b"{}", headers=text)).status_code == 415
