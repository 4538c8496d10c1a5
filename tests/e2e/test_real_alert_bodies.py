"""Bodies written by other projects (Zulip's and Alerta's webhook tests, Keep's provider mocks,
Grafana OnCall's integration examples, Microsoft's samples, ...; tests/alert_bodies/README.md
says which), none of them written for opsbot: each is accepted at its sender's endpoint and at
`/webhooks/generic`, opens an incident people recognise, and the sender's recovery resolves it.
Acknowledgements, assignments and recoveries of nothing open nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.bot_server import RunningBot

REAL = Path(__file__).resolve().parents[1] / "alert_bodies" / "real"


def body(name: str) -> Any:
    return json.loads((REAL / name).read_text())


@dataclass(frozen=True)
class Real:
    fire: str
    title: str
    severity: str
    service: str | None = None
    resolve: str | None = None  # the sender's recovery of the same alert
    alerts: int = 1
    # where a body has no shape of its sender's, /webhooks/generic titles it its own way
    generic_title: str | None = None

    @property
    def endpoints(self) -> tuple[str, ...]:
        sender = self.fire.split("/")[0]
        named = () if sender == "generic" else (f"/webhooks/{sender}",)
        return (*named, "/webhooks/generic")


PROBE = "SyntheticProbeFailed: The synthetic probe of the login page failed three times"
CASES = [
    Real("alertmanager/oncall-example.json", PROBE, "warning"),
    Real("grafana/oncall-grafana-alerting-example.json", PROBE, "warning"),
    Real("grafana/keep-v12-test-alert.json", "ContactPointCheck: Contact point check", "warning"),
    Real(
        "alertmanager/alerta-v4-no-fingerprints.json",
        "orders_stalled: No orders for 15 minutes",
        "critical",
    ),
    Real(
        "alertmanager/zulip-two-alerts-firing.json",
        "High disk temperature",
        "critical",
        resolve="alertmanager/zulip-two-alerts-resolved.json",
        alerts=2,
    ),
    Real(
        "azure/msdocs-activity-log.json",
        "Microsoft.Compute/virtualMachines/deallocate/action",
        "info",
        "batch-vm-2",
    ),
    Real(
        "azure/msdocs-log-alert-v1.json", "checkout-5xx-in-logs: Checkout answers 5xx", "critical"
    ),
    Real(
        "azure/msdocs-metric-alert-activated.json",
        "blob-throttling: Blob reads are being throttled",
        "warning",
        "shopblobs",
        resolve="azure/msdocs-metric-alert-resolved.json",
    ),
    Real(
        "azure/msdocs-service-health-active.json",
        "Storage latency in West Europe: Updates to a service issue affecting subscription "
        "shop-prod.",
        "warning",
        "Storage",
        resolve="azure/msdocs-service-health-resolved.json",
    ),
    Real("datadog/keep-monitor-p2.json", "Checkout latency high", "critical", "checkout"),
    Real("datadog/keep-monitor-numeric-priority.json", "Low disk space", "info"),
    Real(
        "datadog/stackpulse-metadata-triggered.json",
        "Cart pods restarting",
        "critical",
        "cart",
        resolve="datadog/stackpulse-metadata-recovered.json",
    ),
    Real(
        "gcp/agilicus-uptime-open.json",
        "shop - frontend - uptime: An uptime check on Uptime Check URL labels "
        "{host=shop.example.org} is failing.",
        "warning",
        "shop.example.org",
        resolve="gcp/agilicus-uptime-closed.json",
    ),
    Real(
        "gcp/alerta-stackdriver-open.json",
        "API VM health: CPU (agent) for api-vm-12 is above the threshold of 80% with a value "
        "of 97.1%",
        "warning",
        "api-vm-12",
        resolve="gcp/alerta-stackdriver-closed.json",
    ),
    Real(
        "gcp/keep-5xx-open-zero-times.json", "edge-5xx: Edge answers 5XX", "critical", "Shop edge"
    ),
    Real("generic/alerta-graylog-stream.json", "payment errors", "warning"),
    Real("generic/alerta-vrealize.json", "Guest heartbeat lost", "warning"),
    Real(
        "generic/oncall-formatted-webhook-alerting.json",
        "Replication lag on pg-replica-2: Replica is 340s behind its primary",
        "warning",
        resolve="generic/oncall-formatted-webhook-ok.json",
    ),
    Real("generic/oncall-kapacitor.json", "cache-1 memory above 95%", "warning"),
    Real("generic/oncall-webhook-message.json", "Nightly export did not finish", "warning"),
    Real(
        "grafana/alerta-legacy-alerting.json",
        "Web CPU alert: CPU pegged",
        "warning",
        resolve="grafana/alerta-legacy-ok.json",
    ),
    Real(
        "grafana/alerta-legacy-tags.json",
        "UPS battery alert: UPS battery below 11.9 V",
        "warning",
        "ups",
    ),
    Real(
        "grafana/zulip-legacy-no-data.json",
        "Ingest rate no data: The panel has no data.",
        "warning",
    ),
    Real(
        "grafana/zulip-unified-firing.json",
        "Queue backlog: Orders queue holds 1200 messages",
        "warning",
        resolve="grafana/zulip-unified-resolved.json",
    ),
    Real("grafana/zulip-unified-test-without-labels.json", "(TestAlert Grafana)", "warning"),
    Real(
        "grafana/zulip-unified-v11-name-in-group.json",
        "Disk space: Disk nearly full on node-7",
        "warning",
    ),
    Real("newrelic/alerta-legacy-open.json", "Storefront Apdex below 0.7", "info"),
    Real(
        "newrelic/depotjoe-legacy-channel-test.json",
        "New Relic Alert - Test Condition: New Relic Alert - Channel Test",
        "info",
        "Test Target",
    ),
    Real(
        "newrelic/zulip-workflow-created.json",
        "ORDERS-DB query result is > 90.0 for 5 minutes on 'DB CPU'",
        "critical",
        "ORDERS-DB",
        resolve="newrelic/zulip-workflow-closed.json",
    ),
    Real(
        "opsgenie/zulip-create.json",
        "Checkout error budget burning",
        "critical",
        "checkout",
        resolve="opsgenie/zulip-close.json",
    ),
    Real(
        "pagerduty/alerta-v1-trigger.json",
        "Disk full on db-3",
        "warning",
        "database",
        resolve="pagerduty/alerta-v1-acknowledge-and-resolve.json",
    ),
    Real(
        "pagerduty/zulip-v2-trigger.json",
        "Invoices stuck in pending",
        "critical",
        "Billing API",
        resolve="pagerduty/zulip-v2-resolve.json",
    ),
    Real(
        "pagerduty/zulip-v3-triggered.json",
        "Search cluster red",
        "critical",
        "search",
        resolve="pagerduty/zulip-v3-resolved.json",
    ),
    Real(
        "pingdom/alerta-down.json",
        "Public API health: HTTP Error 502",
        "critical",
        "Public API health",
        resolve="pingdom/alerta-up.json",
    ),
    Real(
        "pingdom/zulip-dns-down-no-importance.json", "Docs site: DNS error", "warning", "Docs site"
    ),
    Real("sentry/zulip-event-alert-triggered.json", "Payment gateway timed out", "critical"),
    Real(
        "sentry/zulip-issue-created.json",
        "PaymentTimeout: gateway did not answer in 30s",
        "critical",
        "orders",
        resolve="sentry/zulip-issue-resolved.json",
    ),
    Real(
        "sentry/zulip-legacy-plugin.json",
        "Cart item price changed during checkout",
        "warning",
        "storefront",
    ),
    Real(
        "zabbix/oncall-example-alerting.json",
        "Nginx is down on web-4",
        "warning",
        resolve="zabbix/oncall-example-ok.json",
        generic_title="Nginx is down on web-4: Nginx process count is 0 on web-4",
    ),
    Real(
        "zabbix/zulip-problem.json",
        "Free disk space is less than 5% on db-2.example.org /var",
        "critical",
        "db-2.example.org",
        resolve="zabbix/zulip-ok.json",
    ),
]
# Alone, these change no incident: an acknowledgement or assignment in the sender's own tool,
# or a recovery of an alert opsbot never saw firing.
QUIET = [
    "grafana/zulip-unified-resolved.json",
    "generic/alerta-riemann-ok.json",
    "opsgenie/zulip-acknowledge.json",
    "pagerduty/zulip-v3-acknowledged.json",
    "sentry/zulip-issue-assigned.json",
]


def test_every_real_body_on_disk_is_exercised() -> None:
    used = {name for case in CASES for name in (case.fire, case.resolve) if name} | set(QUIET)
    on_disk = {str(p.relative_to(REAL)) for p in REAL.glob("*/*.json")}
    assert on_disk == used


def _runs() -> list[tuple[Real, str]]:
    return [(case, url) for case in CASES for url in case.endpoints]


@pytest.mark.parametrize(
    ("case", "url"), _runs(), ids=[f"{c.fire.removesuffix('.json')}@{u}" for c, u in _runs()]
)
async def test_a_real_body_opens_the_incident_people_recognise(
    bot: RunningBot, case: Real, url: str
) -> None:
    fired = await bot.client.post(url, json=body(case.fire))
    assert fired.status_code == 200, fired.text
    assert fired.json()["opened"] == 1, fired.text
    [incident_id] = fired.json()["incidents"]
    incident = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    title = case.generic_title if url == "/webhooks/generic" and case.generic_title else case.title
    assert (incident["title"], incident["severity"]) == (title, case.severity)
    if case.service is not None:
        assert incident["service"] == case.service
    assert incident["alert_count"] == case.alerts

    again = await bot.client.post(url, json=body(case.fire))
    assert again.status_code == 200, again.text
    assert again.json()["incidents"] in ([], [incident_id])

    if case.resolve is not None:
        done = await bot.client.post(url, json=body(case.resolve))
        assert done.status_code == 200, done.text
        assert (done.json()["incidents"], done.json()["resolved"]) == ([incident_id], 1)
        incident = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
        assert incident["status"] == "resolved"
    incidents = (await bot.client.get("/api/incidents")).json()["incidents"]
    assert [i["id"] for i in incidents] == [incident_id]


@pytest.mark.parametrize("name", QUIET)
@pytest.mark.parametrize("endpoint", ["named", "generic"])
async def test_an_acknowledgement_or_a_lone_recovery_opens_nothing(
    bot: RunningBot, name: str, endpoint: str
) -> None:
    sender = name.split("/")[0]
    url = (
        f"/webhooks/{sender}"
        if endpoint == "named" and sender != "generic"
        else "/webhooks/generic"
    )
    resp = await bot.client.post(url, json=body(name))
    assert resp.status_code == 200, resp.text
    assert resp.json()["incidents"] == []
    assert (await bot.client.get("/api/incidents")).json()["incidents"] == []
