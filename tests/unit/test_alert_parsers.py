"""The alert parsers on real scenario payloads and on hand-made edge cases."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from integrations.alerts import alertmanager, generic, service_from_labels, sns
from integrations.alerts.model import AlertStatus, Severity
from integrations.errors import PayloadError

PARSERS = {"alertmanager": alertmanager.parse, "generic": generic.parse, "sns": sns.parse}


def _scenario_dir() -> Path:
    """OPSBOT_SCENARIOS_DIR, else the repo's scenarios/, else the shared folder beside the repo."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [repo / "scenarios", repo.parent / "shared" / "scenarios"]
    if os.environ.get("OPSBOT_SCENARIOS_DIR"):
        candidates.insert(0, Path(os.environ["OPSBOT_SCENARIOS_DIR"]))
    return next((path for path in candidates if any(path.glob("*.json"))), candidates[-1])


SCENARIOS = {
    path.stem: json.loads(path.read_text()) for path in sorted(_scenario_dir().glob("*.json"))
}


def _scenario(prefix: str) -> dict:
    return next(s for name, s in SCENARIOS.items() if name.startswith(prefix))


def test_scenarios_are_present() -> None:
    sources = {s["source"] for s in SCENARIOS.values()}
    assert sources == {"alertmanager", "generic", "sns"}, _scenario_dir()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_payload_parses_to_a_firing_alert_with_a_service(name: str) -> None:
    scenario = SCENARIOS[name]
    alerts = PARSERS[scenario["source"]](copy.deepcopy(scenario["payload"]))
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.source == scenario["source"]
    assert alert.status is AlertStatus.FIRING
    assert alert.service
    assert alert.title
    assert alert.group_key and alert.fingerprint
    assert alert.starts_at.tzinfo is not None
    assert alert.ends_at is None


# --- Alertmanager -----------------------------------------------------------------------


def _am_alert(**overrides: object) -> dict:
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"},
        "annotations": {"summary": "checkout 5xx above 5%"},
        "startsAt": "2026-11-20T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": "aaaa000011112222",
    }
    alert.update(overrides)
    return alert


def _am_payload(*alerts: dict, **overrides: object) -> dict:
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "status": "firing",
        "receiver": "opsbot",
        "alerts": list(alerts) or [_am_alert()],
    }
    payload.update(overrides)
    return payload


def test_alertmanager_scenario_maps_every_field() -> None:
    [alert] = alertmanager.parse(_scenario("dev-01")["payload"])
    assert alert.group_key == (
        '{}/{team="commerce"}:{alertname="ContainerMemoryNearLimit", namespace="shop"}'
    )
    assert alert.fingerprint == "7c8d4e8f49f8064c"
    # the alert's name first, then its summary: on-call searches for the name they know
    assert alert.title == "ContainerMemoryNearLimit: orders-api memory above 90% of limit for 5m"
    assert alert.severity is Severity.CRITICAL
    assert alert.service == "orders-api"
    assert alert.starts_at == datetime(2026, 11, 20, 3, 8, 41, 512000, tzinfo=UTC)
    assert alert.ends_at is None
    assert alert.labels["pod"] == "orders-api-7d9f8c6b54-x2kqp"
    assert alert.annotations["runbook_url"].startswith("https://runbooks.example.com/")
    assert alert.generator_url.startswith("http://prometheus-k8s-0:9090/graph")
    assert alert.logs == ()


def test_alertmanager_group_with_a_firing_and_a_resolved_alert() -> None:
    resolved = _am_alert(
        status="resolved",
        labels={"alertname": "HighErrorRate", "service": "cart", "severity": "warning"},
        annotations={},
        endsAt="2026-11-20T10:30:00Z",
        fingerprint="bbbb000011112222",
    )
    firing, done = alertmanager.parse(_am_payload(_am_alert(), resolved))
    assert firing.group_key == done.group_key == '{}:{alertname="HighErrorRate"}'
    assert firing.fingerprint != done.fingerprint
    assert (firing.status, done.status) == (AlertStatus.FIRING, AlertStatus.RESOLVED)
    assert done.ends_at == datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    assert done.title == "HighErrorRate"  # no summary: the alert name
    assert done.severity is Severity.WARNING
    assert firing.starts_at == datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)


def test_alertmanager_firing_alert_has_no_end_even_with_a_future_ends_at() -> None:
    [alert] = alertmanager.parse(_am_payload(_am_alert(endsAt="2026-11-20T10:04:00Z")))
    assert alert.ends_at is None


def test_alertmanager_fingerprint_is_computed_like_alertmanager_when_absent() -> None:
    labels = {"name": "garland, briggs", "fear": "love is not enough"}
    # The value prometheus/common's model tests give for this label set.
    assert alertmanager.label_fingerprint(labels) == "507a62d79ee76c9a"
    alert = _am_alert(labels=labels)
    del alert["fingerprint"]
    [parsed] = alertmanager.parse(_am_payload(alert))
    assert parsed.fingerprint == "507a62d79ee76c9a"
    assert parsed.title == "checkout 5xx above 5%"


@pytest.mark.parametrize(
    ("labels", "service"),
    [
        ({"app": "web", "container": "nginx", "job": "kubelet"}, "web"),
        ({"app_kubernetes_io_name": "api", "job": "kubelet"}, "api"),
        ({"container": "worker", "job": "kubelet"}, "worker"),
        ({"job": "payments-api"}, "payments-api"),
        ({"instance": "10.0.0.1:9100"}, None),
    ],
)
def test_alertmanager_service_falls_back_through_workload_labels(
    labels: dict, service: str | None
) -> None:
    [alert] = alertmanager.parse(_am_payload(_am_alert(labels={"alertname": "X", **labels})))
    assert alert.service == service


ALERTMANAGER_MALFORMED = [
    ([], None, "JSON object, got list"),
    ({"version": "4", "groupKey": "g"}, "alerts", "required"),
    (_am_payload(status="exploded"), "status", "firing"),
    (_am_payload(_am_alert(labels=["alertname"])), "alerts.0.labels", "dictionary"),
    (_am_payload(_am_alert(labels={"alertname": 1})), "alerts.0.labels.alertname", "string"),
    (_am_payload(_am_alert(status="pending")), "alerts.0.status", "firing"),
    (_am_payload(_am_alert(startsAt="yesterday")), "alerts.0.startsAt", "yesterday"),
    (_am_payload(groupKey=["g"]), "groupKey", "string"),
]


@pytest.mark.parametrize("version", ["4", "3", 4, "1", None])
def test_alertmanager_versions_3_and_4_and_grafanas_1_are_read_alike(version: object) -> None:
    [alert] = alertmanager.parse(_am_payload(version=version))
    assert alert.title == "HighErrorRate: checkout 5xx above 5%"
    assert alert.group_key == '{}:{alertname="HighErrorRate"}'


# --- generic --------------------------------------------------------------------------


def test_generic_scenario_maps_every_field() -> None:
    payload = _scenario("dev-02")["payload"]
    [alert] = generic.parse(payload)
    assert alert.group_key == alert.fingerprint == "e7c58f32-acd4-49e1-944c-918d97f11d41"
    assert alert.service == "notification-worker"
    assert alert.severity is Severity.CRITICAL
    assert alert.title == payload["message"]
    assert alert.starts_at == datetime(2026, 11, 20, 7, 43, 37, tzinfo=UTC)
    assert alert.logs == (
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
        " 1: 0xb8cf03 node::OOMErrorHandler(char const*, v8::OOMDetails const&) [node]",
    )
    assert alert.labels == {
        "service": "notification-worker",
        "alert_type": "process_crash",
        "severity": "critical",
        "environment": "production",
        "host": "notification-worker-6c9d7b5f8-4wz8t",
    }
    assert alert.annotations == {"message": payload["message"]}


def test_generic_without_incident_id_groups_by_service_and_alert_type() -> None:
    [alert] = generic.parse(
        {"service": "cart", "alert_type": "latency", "logs": ["a", "b"], "timestamp": 1_700_000_000}
    )
    assert alert.group_key == "cart:latency"
    assert alert.title == "cart latency"
    assert alert.logs == ("a", "b")
    assert alert.starts_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert alert.severity is Severity.WARNING
    assert alert.status is AlertStatus.FIRING


def test_generic_only_an_incident_id_is_enough() -> None:
    [alert] = generic.parse({"incident_id": 4211, "timestamp": "1700000000.5"})
    assert alert.group_key == "4211"
    assert alert.service is None
    assert alert.title == "incident 4211"
    assert alert.starts_at == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)


def test_generic_missing_timestamp_means_now() -> None:
    before = datetime.now(UTC)
    [alert] = generic.parse({"service": "cart"})
    assert before <= alert.starts_at <= datetime.now(UTC)
    assert alert.group_key == "cart"


@pytest.mark.parametrize("status", ["resolved", "OK", "Closed"])
def test_generic_resolved_statuses(status: str) -> None:
    [alert] = generic.parse(
        {"service": "cart", "status": status, "timestamp": "2026-11-20T10:00:00+02:00"}
    )
    assert alert.status is AlertStatus.RESOLVED
    assert alert.ends_at == alert.starts_at == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert "status" not in alert.labels


def test_generic_title_annotations_and_extra_labels() -> None:
    [alert] = generic.parse(
        {
            "service": "cart",
            "alert_type": "errors",
            "summary": "cart errors",
            "description": "5xx above 5%",
            "runbook_url": "https://runbooks.example.com/cart",
            "region": "eu-west-1",
            "replicas": 3,
            "canary": False,
            "context": {"nested": "ignored"},
        }
    )
    assert alert.title == "cart errors"
    assert alert.annotations == {
        "description": "5xx above 5%",
        "runbook_url": "https://runbooks.example.com/cart",
    }
    assert alert.labels == {
        "service": "cart",
        "alert_type": "errors",
        "severity": "warning",
        "region": "eu-west-1",
        "replicas": "3",
        "canary": "false",
    }


GENERIC_MALFORMED = [
    ("service=cart", None, "JSON object, got str"),
    ({"alert_type": "latency"}, None, "looked for alertname, alert_name, name, ruleName"),
    ({"service": "cart", "logs": ["ok", {"line": 2}]}, "logs.1", "string"),
    ({"service": "cart", "logs": 42}, "logs", "a string or a list of strings"),
    ({"service": "cart", "timestamp": "last tuesday"}, "timestamp", "last tuesday"),
    ({"service": "cart", "timestamp": 1e20}, "timestamp", "out of range"),
    ({"service": ["cart"]}, "service", "string"),
]


# --- SNS / CloudWatch -------------------------------------------------------------------


def _alarm(**overrides: object) -> dict:
    alarm = {
        "AlarmName": "checkout-CPUUtilization-high",
        "AlarmDescription": "checkout CPU above 85%",
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed",
        "StateChangeTime": "2026-11-20T10:00:00.000+0000",
        "Region": "EU (Ireland)",
        "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:checkout-CPUUtilization-high",
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "CPUUtilization",
            "Namespace": "AWS/ECS",
            "Dimensions": [
                {"name": "ClusterName", "value": "prod"},
                {"name": "ServiceName", "value": "checkout-prod"},
            ],
        },
    }
    alarm.update(overrides)
    return alarm


def _envelope(message: object, **overrides: object) -> dict:
    envelope = {
        "Type": "Notification",
        "MessageId": "5f2c1c9e-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:alarms",
        "Subject": 'ALARM: "checkout-CPUUtilization-high" in EU (Ireland)',
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2026-11-20T10:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "c2lnbmF0dXJl",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
    }
    envelope.update(overrides)
    return envelope


@pytest.mark.parametrize(
    ("prefix", "group_key", "service", "dimension"),
    [
        (
            "dev-05",
            "318224790156:us-east-1:public-api-alb-RequestCountPerTarget-high",
            "public-api",
            ("targetgroup", "targetgroup/public-api-prod/9e4a1c7b2d5f8e31"),
        ),
        (
            "dev-10",
            "318224790156:us-east-1:orders-db-prod-DatabaseConnections-high",
            "orders-db",
            ("dbinstanceidentifier", "orders-db-prod"),
        ),
        (
            "dev-12",
            "904512337781:eu-west-1:reports-db-FreeStorageSpace-low",
            "reports-db",
            ("dbinstanceidentifier", "reports-db"),
        ),
    ],
)
def test_sns_scenario_alarms(
    prefix: str, group_key: str, service: str, dimension: tuple[str, str]
) -> None:
    env = sns.parse_envelope(_scenario(prefix)["payload"])
    alarm = json.loads(env.Message)
    [alert] = sns.parse_alarm(env)
    assert alert.group_key == group_key
    assert alert.fingerprint == alarm["AlarmArn"]
    assert alert.title == alarm["AlarmName"]
    assert alert.service == service
    assert alert.severity is Severity.CRITICAL  # "-low" is a threshold direction
    assert alert.annotations == {
        "description": alarm["AlarmDescription"],
        "reason": alarm["NewStateReason"],
    }
    account, region, _ = group_key.split(":", 2)
    assert alert.labels["alarm_name"] == alarm["AlarmName"]
    assert (alert.labels["account"], alert.labels["region"]) == (account, region)
    assert alert.labels["namespace"] == alarm["Trigger"]["Namespace"]
    assert alert.labels["metric"] == alarm["Trigger"]["MetricName"]
    assert alert.labels[dimension[0]] == dimension[1]
    assert alert.labels["service"] == service
    assert alert.starts_at == parse_cw_time(alarm["StateChangeTime"])


def parse_cw_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


def test_sns_ok_resolves_and_insufficient_data_is_no_alert() -> None:
    [ok] = sns.parse(_envelope(_alarm(NewStateValue="OK")))
    assert ok.status is AlertStatus.RESOLVED
    assert ok.ends_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert ok.service == "checkout"  # the ServiceName dimension, "-prod" stripped
    assert ok.group_key == "123456789012:eu-west-1:checkout-CPUUtilization-high"
    assert sns.parse(_envelope(_alarm(NewStateValue="INSUFFICIENT_DATA"))) == []


def test_sns_service_from_a_dimension_when_the_alarm_name_lacks_the_metric() -> None:
    trigger = {
        "MetricName": "HTTPCode_Target_5XX_Count",
        "Namespace": "AWS/ApplicationELB",
        "Dimensions": [
            {"name": "LoadBalancer", "value": "app/prod-public-alb/5b2c8d1e7f3a9c04"},
            {"name": "TargetGroup", "value": "targetgroup/public-api-production/9e4a1c7b"},
        ],
    }
    [alert] = sns.parse(_envelope(_alarm(AlarmName="public-5xx", Trigger=trigger)))
    assert alert.service == "public-api"


def test_sns_alarm_without_arn_takes_the_region_from_the_topic() -> None:
    alarm = _alarm(AlarmArn=None, Trigger=None, AlarmName="nightly-backup-failed")
    [alert] = sns.parse(_envelope(alarm))
    assert alert.group_key == "123456789012:eu-west-1:nightly-backup-failed"
    assert alert.fingerprint == alert.group_key
    assert alert.service is None
    assert "service" not in alert.labels and "metric" not in alert.labels


@pytest.mark.parametrize(
    ("name", "description", "severity"),
    [
        ("payments-critical-5xx", None, Severity.CRITICAL),
        ("payments-5xx", "Warning: 5xx above 1%", Severity.WARNING),
        ("payments-5xx-sev1", "warning only", Severity.CRITICAL),
        ("payments-latency-low", "p99 is low", Severity.CRITICAL),
    ],
)
def test_sns_severity_from_words_in_the_alarm(
    name: str, description: str | None, severity: Severity
) -> None:
    [alert] = sns.parse(_envelope(_alarm(AlarmName=name, AlarmDescription=description)))
    assert alert.severity is severity


def test_sns_plain_text_message_is_one_firing_alert() -> None:
    env = _envelope("Backup job failed on db-1\nsee logs", Subject="Backup failed")
    [alert] = sns.parse(env)
    assert alert.status is AlertStatus.FIRING
    assert alert.group_key == alert.fingerprint == f"{env['TopicArn']}:Backup failed"
    assert alert.title == "Backup failed"
    assert alert.annotations == {"message": "Backup job failed on db-1\nsee logs"}
    assert alert.labels == {"topic": "alarms", "region": "eu-west-1", "account": "123456789012"}
    assert alert.starts_at == datetime(2026, 11, 20, 10, 0, 1, tzinfo=UTC)

    no_subject = _envelope({"detail-type": "EC2 Instance State-change"}, Subject=None)
    [event] = sns.parse(no_subject)
    assert event.group_key == no_subject["TopicArn"]
    assert event.title == no_subject["Message"]


def test_sns_subscription_confirmation_envelope() -> None:
    body = _envelope(
        "You have chosen to subscribe to the topic",
        Type="SubscriptionConfirmation",
        Subject=None,
        SubscribeURL="https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t",
        Token="t0k3n",
    )
    env = sns.parse_envelope(body)
    assert env.Token == "t0k3n"
    with pytest.raises(PayloadError) as caught:
        sns.parse_alarm(env)
    assert caught.value.field == "Type"


SNS_MALFORMED = [
    (b"{}", None, "JSON object, got bytes"),
    ({k: v for k, v in _envelope("x").items() if k != "Message"}, "Message", "required"),
    (_envelope("x", Type="Ping"), "Type", "Notification"),
    (_envelope("x", Timestamp="soon"), "Timestamp", "soon"),
    (
        _envelope("x", Type="SubscriptionConfirmation", SubscribeURL="https://s"),
        "Token",
        "required in a SubscriptionConfirmation",
    ),
    (_envelope(_alarm(NewStateValue="ALARMING")), "Message.NewStateValue", "ALARM"),
    (_envelope(_alarm(StateChangeTime=None)), "Message.StateChangeTime", "time"),
]


@pytest.mark.parametrize(
    ("source", "body", "field", "words"),
    [
        *(("alertmanager", *case) for case in ALERTMANAGER_MALFORMED),
        *(("generic", *case) for case in GENERIC_MALFORMED),
        *(("sns", *case) for case in SNS_MALFORMED),
    ],
)
def test_malformed_payload_names_the_field(
    source: str, body: object, field: str | None, words: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        PARSERS[source](body)
    assert caught.value.field == field
    assert words in str(caught.value)


# --- Service from Kubernetes labels ------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "service"),
    [
        # kube-prometheus KubePodCrashLooping: no service, only container, pod and the exporter.
        (
            {
                "alertname": "KubePodCrashLooping",
                "job": "kube-state-metrics",
                "pod": "checkout-7d9f6c-x2",
            },
            "checkout",
        ),
        (
            {"job": "kube-state-metrics", "pod": "checkout-7d9f6c8b5-x2v4q", "container": "api"},
            "api",
        ),
        (
            {"alertname": "KubeJobFailed", "job": "kube-state-metrics", "job_name": "nightly"},
            "nightly",
        ),
        ({"job": "kube-state-metrics", "deployment": "cart", "container": "main"}, "cart"),
        ({"app_kubernetes_io_name": "search", "app": "legacy", "pod": "x-1"}, "search"),
        ({"app": "billing", "service": "billing-api"}, "billing-api"),
        ({"job": "kube-state-metrics", "pod": "kafka-2"}, "kafka"),
        ({"job": "node-exporter"}, "node-exporter"),
    ],
)
def test_alertmanager_service_comes_from_the_workload_labels(
    labels: dict[str, str], service: str
) -> None:
    [alert] = alertmanager.parse(_am_payload(_am_alert(labels=labels)))
    assert alert.service == service


def test_a_pod_name_keeps_words_that_are_not_a_generated_suffix() -> None:
    assert service_from_labels({"pod": "web-proxy"}) == "web-proxy"
    assert service_from_labels({"pod": "web-proxy"}, order=("service",)) is None
