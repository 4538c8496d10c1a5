"""The shared normalisation every sender's parser uses, shape detection of each documented
body, lenient Alertmanager grouping, and custom mappings checked at start-up."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app.config import ConfigError, load_config
from integrations.alerts import alertmanager, normalize, severity, sources
from integrations.alerts.model import AlertStatus, Severity
from integrations.alerts.payload import parse_timestamp
from integrations.errors import PayloadError

BODIES = Path(__file__).resolve().parents[1] / "alert_bodies"


@pytest.mark.parametrize(
    ("word", "level"),
    [
        ("critical", Severity.CRITICAL),
        ("severe", Severity.CRITICAL),
        ("P1", Severity.CRITICAL),
        ("sev1", Severity.CRITICAL),
        ("1", Severity.CRITICAL),
        ("high", Severity.CRITICAL),
        ("ERROR", Severity.CRITICAL),
        ("P2", Severity.CRITICAL),
        ("urgent", Severity.CRITICAL),
        ("major", Severity.CRITICAL),
        ("warning", Severity.WARNING),
        ("P3", Severity.WARNING),
        ("average", Severity.WARNING),
        ("3", Severity.WARNING),
        ("P4", Severity.INFO),
        ("informational", Severity.INFO),
        ("5", Severity.INFO),
        ("bananas", Severity.WARNING),
        (None, Severity.WARNING),
    ],
)
def test_severity_words_and_numbers(word: str | None, level: Severity) -> None:
    assert severity.level(word) is level


@pytest.mark.parametrize(
    ("word", "level"),
    [
        ("Sev0", Severity.CRITICAL),
        ("Sev1", Severity.CRITICAL),
        ("Sev2", Severity.WARNING),
        ("Sev3", Severity.INFO),
        ("Sev4", Severity.INFO),
        ("3", Severity.INFO),
    ],
)
def test_azure_severity_scale(word: str, level: Severity) -> None:
    assert severity.level(word, severity.AZURE) is level


@pytest.mark.parametrize(
    ("word", "level"),
    [
        ("0", Severity.INFO),  # Not classified
        ("1", Severity.INFO),
        ("2", Severity.WARNING),
        ("3", Severity.WARNING),  # Average
        ("4", Severity.CRITICAL),  # High
        ("5", Severity.CRITICAL),
        ("Disaster", Severity.CRITICAL),
        ("Not classified", Severity.INFO),
    ],
)
def test_zabbix_numeric_severity_is_zabbixs_own_scale(word: str, level: Severity) -> None:
    assert severity.level(word, severity.ZABBIX) is level


def test_every_level_is_one_of_three() -> None:
    levels = {*severity.COMMON.values(), *severity.AZURE.values(), *severity.ZABBIX.values()}
    assert {level.value for level in levels} == {"critical", "warning", "info"}


def test_the_senders_word_is_kept_beside_the_level_only_when_it_gave_one() -> None:
    assert severity.labels("Sev1", Severity.CRITICAL) == {
        "severity": "critical",
        "source_severity": "Sev1",
    }
    assert severity.labels("CRITICAL", Severity.CRITICAL) == {"severity": "critical"}
    assert severity.labels(None, Severity.WARNING) == {"severity": "warning"}


def test_a_stored_high_reads_as_critical() -> None:
    """Rows and configs written when there was a fourth level, `high`, keep working."""
    assert Severity("high") is Severity.CRITICAL
    assert Severity("Warning") is Severity.WARNING
    with pytest.raises(ValueError):
        Severity("bananas")


def test_title_is_the_name_then_the_summary_cut_at_a_word() -> None:
    assert (
        normalize.title("thing_dead", "No things for over 10 minutes")
        == "thing_dead: No things for over 10 minutes"
    )
    assert normalize.title("disk", "disk full on db-1") == "disk full on db-1"
    assert normalize.title(None, "first line\nsecond line") == "first line"
    assert normalize.title("", None) is None
    long = normalize.title("HighLatency", "p99 latency above the objective " * 10)
    assert long is not None and len(long) <= normalize.TITLE_MAX
    assert long.startswith("HighLatency: p99 latency") and long.endswith(" objective p99…")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1700000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1700000000123, datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        ("1700000000123", datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        (1700000000123456789, datetime(2023, 11, 14, 22, 13, 20, 123457, tzinfo=UTC)),
        ("2023-11-14T23:13:20+01:00", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ],
)
def test_timestamps_in_seconds_milliseconds_nanoseconds_or_iso(
    value: object, expected: datetime
) -> None:
    assert parse_timestamp(value) == expected


def test_a_key_too_long_to_store_keeps_its_start_and_a_digest() -> None:
    long = "azure:" + "x" * 500
    bounded = normalize.bounded_key(long)
    assert len(bounded) == normalize.KEY_MAX and bounded.startswith("azure:xxx")
    assert bounded != normalize.bounded_key(long + "y")
    assert normalize.bounded_key("short") == "short"


@pytest.mark.parametrize("path", sorted(BODIES.glob("*/*.json")), ids=lambda p: p.stem)
def test_each_documented_body_is_recognised_by_its_shape(path: Path) -> None:
    assert sources.detect(json.loads(path.read_text())) == path.parent.name


@pytest.mark.parametrize(
    "doc", [{"message": "x"}, {"service": "cart"}, {"alerts": {"a": 1}}, {"title": "t"}]
)
def test_plain_bodies_are_left_to_the_generic_parser(doc: dict) -> None:
    assert sources.detect(doc) is None


# ---- lenient Alertmanager ---------------------------------------------------------------


def _note(**overrides: object) -> dict:
    alert = {
        "labels": {"alertname": "thing_dead", "job": "things", "severity": "page"},
        "annotations": {"summary": "No things for over 10 minutes"},
        "startsAt": "2026-11-20T10:00:00Z",
    }
    note = {
        "version": "4",
        "status": "resolved",
        "groupLabels": {"job": "things"},
        "commonLabels": {"job": "things", "severity": "page"},
        "alerts": [alert],
    }
    note.update(overrides)
    return note


@pytest.mark.parametrize(
    ("drop", "group_key"),
    [
        ((), '{}:{job="things"}'),
        (("groupLabels",), '{}:{job="things", severity="page"}'),
        (("groupLabels", "commonLabels"), '{}:{alertname="thing_dead"}'),
    ],
)
def test_alertmanager_derives_a_missing_group_key(drop: tuple[str, ...], group_key: str) -> None:
    note = {k: v for k, v in _note().items() if k not in drop}
    [alert] = alertmanager.parse(note)
    assert alert.group_key == group_key
    # no status of its own: the notification's
    assert alert.status is AlertStatus.RESOLVED
    assert alert.title == "thing_dead: No things for over 10 minutes"
    assert alert.severity is Severity.CRITICAL


# ---- custom mappings checked at start-up ----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "template", "words"),
    [
        ("title", "{{ payload.check. }}", "not a valid template"),
        ("service", "{{ check.service }}", "uses check"),
        ("severity", "{{ payload.level | shout }}", "No filter named 'shout'"),
        ("labels", {"team": "{% if %}"}, "label 'team'"),
    ],
)
def test_a_bad_mapping_template_names_the_key_and_the_file(
    tmp_path: Path, field: str, template: object, words: str
) -> None:
    spec = {"title": "{{ payload.name }}", field: template}
    path = tmp_path / "opsbot.yaml"
    path.write_text(json.dumps({"webhooks": {"mappings": {"uptime": spec}}}))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"webhooks.mappings.uptime.{field}" in message
    assert words in message


def test_a_mapping_name_must_fit_in_a_url(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.yaml"
    path.write_text(json.dumps({"webhooks": {"mappings": {"my tool": {"title": "x"}}}}))
    with pytest.raises(ConfigError, match=r"webhooks\.mappings"):
        load_config(path)


def test_a_mapping_renders_missing_fields_empty_and_refuses_an_empty_title(
    tmp_path: Path,
) -> None:
    path = tmp_path / "opsbot.yaml"
    spec = {"title": "{{ payload.check.name }}", "service": "{{ payload.nope.deeper }}"}
    path.write_text(json.dumps({"webhooks": {"mappings": {"uptime": spec}}}))
    mapping = load_config(path).webhooks.mapping("uptime")
    assert mapping is not None
    [alert] = mapping.parse({"check": {"name": "homepage"}})
    assert (alert.title, alert.service, alert.status) == ("homepage", None, AlertStatus.FIRING)
    with pytest.raises(PayloadError, match=r"webhooks\.mappings\.uptime\.title rendered empty"):
        mapping.parse({"check": {}})


def test_gcp_severity_from_the_system_labels_and_an_upper_case_state() -> None:
    """A Cloud Monitoring body as Keep's GCP provider mocks it: `OPEN`, schema 1.0, the
    severity only in metadata.system_labels."""
    body = {
        "version": "1.0",
        "incident": {
            "incident_id": "mem-234",
            "state": "OPEN",
            "started_at": 0,
            "ended_at": 0,
            "summary": "Memory usage exceeds 90% on production servers",
            "resource": {"type": "gce_instance", "labels": {"instance_id": "prod-web-1"}},
            "resource_display_name": "Production Web Server 1",
            "metadata": {"system_labels": {"severity": "warning"}, "user_labels": {}},
            "policy_name": "projects/987654/alertPolicies/memory-policy",
            "documentation": {"subject": "High memory usage detected"},
        },
    }
    assert sources.detect(body) == "gcp"
    [alert] = sources.parse_any(body)
    assert (alert.status, alert.severity) == (AlertStatus.FIRING, Severity.WARNING)
    assert alert.service == "Production Web Server 1"
    assert alert.title == "memory-policy: High memory usage detected"


def test_one_alert_posted_on_its_own_is_a_notification_of_one() -> None:
    """The Alertmanager alert Grafana OnCall's Grafana integration tests with: no
    notification around it, its text in `message` as older kubernetes-mixin rules put it."""
    alert = {
        "endsAt": "0001-01-01T00:00:00Z",
        "labels": {
            "job": "kube-state-metrics",
            "job_name": "email-tracking-perform-initialization-1.0.50",
            "severity": "warning",
            "alertname": "KubeJobCompletion",
            "namespace": "default",
        },
        "status": "firing",
        "startsAt": "2019-12-13T08:57:35.095800493Z",
        "annotations": {
            "message": "Job default/email-tracking is taking more than one hour to complete.",
        },
        "generatorURL": "https://localhost/prometheus/graph?g0.expr=kube_job_spec_completions",
    }
    assert sources.detect(alert) == "alertmanager"
    [parsed] = sources.parse_any(alert)
    assert parsed.title == (
        "KubeJobCompletion: Job default/email-tracking is taking more than one hour to complete."
    )
    assert parsed.status is AlertStatus.FIRING
    assert parsed.group_key == '{}:{alertname="KubeJobCompletion"}'
    [via_grafana] = sources.NAMED["grafana"](alert)
    assert via_grafana.title == parsed.title


@pytest.mark.parametrize(
    ("sender", "doc", "field"),
    [
        ("pagerduty", {"messages": [{"event": "incident.trigger"}]}, "messages"),
        ("zabbix", {"hostname": "db-1", "status": "PROBLEM"}, "event_id"),
        ("azure", {"schemaId": "Microsoft.Insights/activityLogs", "data": {"status": "x"}}, "data"),
    ],
)
def test_a_senders_body_missing_what_identifies_the_alert_is_refused_naming_it(
    sender: str, doc: dict, field: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        sources.NAMED[sender](doc)
    assert field in str(caught.value)


def test_zabbix_problem_and_ok_of_one_trigger_group_though_their_event_ids_differ() -> None:
    link = "https://zabbix.example.org/tr_events.php?triggerid=7&eventid={}"
    problem = {"trigger": "Disk full", "hostname": "db-1", "status": "PROBLEM"}
    [fired] = sources.NAMED["zabbix"]({**problem, "link": link.format(100)})
    [ok] = sources.NAMED["zabbix"]({**problem, "status": "OK", "link": link.format(101)})
    assert fired.group_key == ok.group_key == "zabbix:trigger-7:db-1"
    assert (fired.status, ok.status) == (AlertStatus.FIRING, AlertStatus.RESOLVED)


def test_a_malformed_alertmanager_body_at_generic_gets_alertmanagers_own_error() -> None:
    with pytest.raises(PayloadError, match="alerts"):
        sources.parse_any({"receiver": "x", "groupLabels": {"alertname": "A"}, "alerts": {}})


@pytest.mark.parametrize(
    ("doc", "title"),
    [
        ({"AlertName": "disk_full", "Description": "db-1 at 99%"}, "disk_full: db-1 at 99%"),
        ({"stream": {"title": "Payment errors"}, "count": 3}, "Payment errors"),
        ({"eventName": "probe failed", "criticality": "LEVEL_CRITICAL"}, "probe failed"),
    ],
)
def test_generic_finds_titles_in_any_spelling_and_one_object_down(doc: dict, title: str) -> None:
    [alert] = sources.parse_any(doc)
    assert alert.title == title


def test_a_severity_inside_a_longer_word_counts() -> None:
    assert severity.level("ALERT_CRITICALITY_LEVEL_WARNING") is Severity.WARNING
    assert severity.level("LEVEL_CRITICAL") is Severity.CRITICAL


@pytest.mark.parametrize(
    ("link", "base", "expected"),
    [
        ("?orgId=1", "https://grafana.example.org/", "https://grafana.example.org/?orgId=1"),
        ("?orgId=1", "", None),
        ("https://prom:9090/graph", "https://am/", "https://prom:9090/graph"),
        ("", "https://am/", None),
    ],
)
def test_a_relative_generator_link_is_made_absolute_from_external_url(
    link: str, base: str, expected: str | None
) -> None:
    note = {**_note(), "externalURL": base}
    note["alerts"][0]["generatorURL"] = link
    [alert] = alertmanager.parse(note)
    assert alert.generator_url == expected


def test_datadog_variables_under_their_own_names_one_object_down() -> None:
    doc = {
        "title": "[Triggered] Cart pods restarting",
        "id": "1",
        "metadata": {"ALERT_ID": "42", "ALERT_TRANSITION": "Triggered", "ALERT_TYPE": "error"},
    }
    assert sources.detect(doc) == "datadog"
    [alert] = sources.parse_any(doc)
    assert (alert.group_key, alert.severity) == ("datadog:42:", Severity.CRITICAL)
