"""Parse AWS SNS HTTP(S) deliveries: the envelope, and CloudWatch alarms (or any text) inside."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from integrations.alerts import severity
from integrations.alerts.model import Alert, AlertStatus, Severity
from integrations.alerts.payload import UtcDatetime, parse_timestamp, validate
from integrations.errors import PayloadError

SOURCE = "sns"

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

_ALARM_STATUS = {"ALARM": AlertStatus.FIRING, "OK": AlertStatus.RESOLVED}
# Words in an alarm's name or description that state a severity; "low"/"high" in alarm
# names usually mean the threshold direction, so only "high" (critical, the default) is
# listed.
_SEVERITY_WORDS = frozenset(
    {"critical", "crit", "sev1", "p1", "high", "major", "sev2", "p2"}
    | {"warning", "warn", "sev3", "p3", "info", "sev4", "p4"}
)
# Dimensions whose value names the workload, best first (ServiceName is tried before these).
_SERVICE_DIMENSIONS = (
    "FunctionName",
    "DBInstanceIdentifier",
    "DBClusterIdentifier",
    "TargetGroup",
    "QueueName",
    "TableName",
    "ApiName",
    "CacheClusterId",
    "AutoScalingGroupName",
    "LoadBalancer",
)
# ELB dimension values look like "targetgroup/<name>/<id>" or "app/<name>/<id>".
_ELB_PREFIXES = frozenset({"targetgroup", "app", "net", "gwy"})
_NAME_SUFFIXES = re.compile(
    r"(?:[-_.](?:alb|elb|nlb|rds|ecs|lambda|ec2|sqs|asg|prod|production|staging|stage|dev))+$",
    re.IGNORECASE,
)
_TITLE_MAX = 120


class SnsEnvelope(BaseModel):
    """The JSON document SNS POSTs to an HTTP(S) subscriber (names as AWS spells them)."""

    Type: Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
    MessageId: str
    TopicArn: str
    Subject: str | None = None
    Message: str
    Timestamp: str
    SignatureVersion: str
    Signature: str
    SigningCertURL: str
    SubscribeURL: str | None = None
    UnsubscribeURL: str | None = None
    Token: str | None = None

    @field_validator("Timestamp")
    @classmethod
    def _timestamp_parses(cls, value: str) -> str:
        # Kept as sent: the exact text is part of the signed string.
        parse_timestamp(value)
        return value

    @property
    def sent_at(self) -> datetime:
        return parse_timestamp(self.Timestamp)


class _Dimension(BaseModel):
    name: str
    value: str


class _Trigger(BaseModel):
    MetricName: str | None = None
    Namespace: str | None = None
    Dimensions: list[_Dimension] = Field(default_factory=list)


class _Alarm(BaseModel):
    AlarmName: str
    AlarmDescription: str | None = None
    AWSAccountId: str | None = None
    AlarmArn: str | None = None
    NewStateValue: Literal["ALARM", "OK", "INSUFFICIENT_DATA"]
    NewStateReason: str | None = None
    StateChangeTime: UtcDatetime
    Trigger: _Trigger | None = None


def parse_envelope(body: object) -> SnsEnvelope:
    """Validate an SNS delivery; confirmations must carry `SubscribeURL` and `Token`."""
    env = validate(SnsEnvelope, body)
    if env.Type != NOTIFICATION:
        for name in ("SubscribeURL", "Token"):
            if not getattr(env, name):
                raise PayloadError(f"{name}: required in a {env.Type}", field=name)
    return env


def parse_alarm(env: SnsEnvelope) -> list[Alert]:
    """Alerts in a Notification: a CloudWatch alarm (none for INSUFFICIENT_DATA) or any text."""
    if env.Type != NOTIFICATION:
        raise PayloadError(f"a {env.Type} carries no alert", field="Type")
    try:
        document = json.loads(env.Message)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, dict) and "AlarmName" in document:
        return _alarm_alerts(env, validate(_Alarm, document, prefix="Message"))
    return [_message_alert(env)]


def parse(body: object) -> list[Alert]:
    """The alerts in one SNS delivery body (signature not checked: see `sns_signature`)."""
    return parse_alarm(parse_envelope(body))


def _alarm_alerts(env: SnsEnvelope, alarm: _Alarm) -> list[Alert]:
    status = _ALARM_STATUS.get(alarm.NewStateValue)
    if status is None:
        return []
    arn_region, arn_account = _arn_region_account(alarm.AlarmArn or env.TopicArn)
    account = alarm.AWSAccountId or arn_account
    group_key = f"{account}:{arn_region}:{alarm.AlarmName}"
    trigger = alarm.Trigger or _Trigger()
    dimensions = {d.name: d.value for d in trigger.Dimensions}
    service = _service(alarm.AlarmName, trigger.MetricName, dimensions)
    # An alarm in ALARM is a page unless its name or description says otherwise.
    level = _severity((alarm.AlarmName, alarm.AlarmDescription), Severity.CRITICAL)
    labels = {
        "alarm_name": alarm.AlarmName,
        "account": account,
        "region": arn_region,
        **({"namespace": trigger.Namespace} if trigger.Namespace else {}),
        **({"metric": trigger.MetricName} if trigger.MetricName else {}),
        **{name.lower(): value for name, value in dimensions.items()},
        **({"service": service} if service else {}),
        "severity": level.value,
    }
    annotations = {
        "description": alarm.AlarmDescription,
        "reason": alarm.NewStateReason,
    }
    return [
        Alert(
            source=SOURCE,
            group_key=group_key,
            fingerprint=alarm.AlarmArn or group_key,
            status=status,
            title=alarm.AlarmName,
            severity=level,
            starts_at=alarm.StateChangeTime,
            ends_at=alarm.StateChangeTime if status is AlertStatus.RESOLVED else None,
            service=service,
            labels=labels,
            annotations={key: value for key, value in annotations.items() if value},
        )
    ]


def _message_alert(env: SnsEnvelope) -> Alert:
    key = f"{env.TopicArn}:{env.Subject}" if env.Subject else env.TopicArn
    region, account = _arn_region_account(env.TopicArn)
    first_line = next((line for line in env.Message.splitlines() if line.strip()), "")
    return Alert(
        source=SOURCE,
        group_key=key,
        fingerprint=key,
        status=AlertStatus.FIRING,
        title=env.Subject or first_line[:_TITLE_MAX] or f"SNS message on {env.TopicArn}",
        severity=_severity((env.Subject,), Severity.WARNING),
        starts_at=env.sent_at,
        labels={"topic": env.TopicArn.rsplit(":", 1)[-1], "region": region, "account": account},
        annotations={"message": env.Message},
    )


def _arn_region_account(arn: str) -> tuple[str, str]:
    """`arn:partition:service:region:account:...` → (region, account); empty when absent."""
    parts = arn.split(":")
    if len(parts) < 5 or parts[0] != "arn":
        return "", ""
    return parts[3], parts[4]


def _severity(texts: Iterable[str | None], default: Severity) -> Severity:
    """The highest severity word in the first text that has one."""
    for text in texts:
        words = _SEVERITY_WORDS.intersection(re.findall(r"[a-z0-9]+", (text or "").lower()))
        if words:
            return Severity.worst(severity.level(word) for word in words)
    return default


def _service(alarm_name: str, metric: str | None, dimensions: dict[str, str]) -> str | None:
    """Best-effort workload name: ServiceName dimension, alarm-name prefix, other dimensions."""
    candidates = [dimensions.get("ServiceName", "")]
    if metric and (at := alarm_name.lower().find(metric.lower())) > 0:
        candidates.append(alarm_name[:at].rstrip("-_. "))
    candidates += [
        _resource_name(dimensions[name]) for name in _SERVICE_DIMENSIONS if name in dimensions
    ]
    return next((name for candidate in candidates if (name := _strip_suffixes(candidate))), None)


def _resource_name(value: str) -> str:
    parts = value.split("/")
    return parts[1] if len(parts) > 2 and parts[0] in _ELB_PREFIXES else parts[-1]


def _strip_suffixes(name: str) -> str:
    """Drop trailing AWS resource and environment tokens: "public-api-prod-alb" → "public-api"."""
    return _NAME_SUFFIXES.sub("", name)
