"""Parse a Prometheus Alertmanager webhook notification (payload versions 3 and 4, and
Grafana's Alertmanager-compatible bodies) into `Alert`s, leniently: a missing `groupKey` is
derived from the group, an alert without its own `status` takes the notification's."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from integrations.alerts import normalize, severity
from integrations.alerts.model import Alert, AlertStatus, Severity, service_from_labels
from integrations.alerts.payload import OptionalUtcDatetime, UtcDatetime, validate

SOURCE = "alertmanager"

# Keys only an Alertmanager-style notification has beside its `alerts` list.
_NOTIFICATION_KEYS = ("groupKey", "groupLabels", "commonLabels", "receiver", "externalURL")

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_LABEL_SEPARATOR = 0xFF

Status = Literal["firing", "resolved"]


def _key_text(value: object) -> object:
    # Alertmanager 0.x sent groupKey as a number (version 3 bodies still carry one).
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _AmAlert(BaseModel):
    status: Status | None = None
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: UtcDatetime = Field(alias="startsAt")
    ends_at: OptionalUtcDatetime = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str | None = None


class AmNotification(BaseModel):
    version: Annotated[str | None, BeforeValidator(_key_text)] = None
    group_key: Annotated[str | None, BeforeValidator(_key_text)] = Field(
        default=None, alias="groupKey"
    )
    status: Status = "firing"
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    alerts: list[_AmAlert]
    title: str | None = None  # Grafana's "[FIRING:1] ..." summary of the notification
    external_url: str | None = Field(default=None, alias="externalURL")


def matches(body: dict[str, object]) -> bool:
    """An `alerts` list of labelled alerts beside the notification's own keys, or one alert."""
    if _lone_alert(body):
        return True
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        return False
    labelled = all(isinstance(a, dict) and "labels" in a for a in alerts)
    return labelled and (bool(alerts) or any(key in body for key in _NOTIFICATION_KEYS))


def attempted(body: dict[str, object]) -> bool:
    """A notification, though perhaps a malformed one: its errors are Alertmanager's."""
    return "alerts" in body and any(key in body for key in _NOTIFICATION_KEYS)


def parse(body: object) -> list[Alert]:
    """Turn one Alertmanager notification into one `Alert` per alert in its group."""
    return parse_notification(validate(AmNotification, as_notification(body)), SOURCE)


def parse_exact(body: bytes) -> list[Alert] | None:
    """A notification exactly as Alertmanager sends it, validated straight from its bytes
    (pydantic reads the JSON; no dict of it is built first); None for any other body, which
    `parse` reads leniently or explains."""
    try:
        note = AmNotification.model_validate_json(body)
    except ValidationError:
        return None
    return parse_notification(note, SOURCE)


def as_notification(body: object) -> object:
    """One alert posted on its own (`labels`, `startsAt`, ...) is a notification of one."""
    if isinstance(body, dict) and _lone_alert(body):
        return {"alerts": [body]}
    return body


def _lone_alert(body: dict[str, object]) -> bool:
    return isinstance(body.get("labels"), dict) and "startsAt" in body and "alerts" not in body


def parse_notification(note: AmNotification, source: str) -> list[Alert]:
    """The alerts of a validated notification, in its order."""
    group_key = note.group_key or _derived_group_key(note)
    return [_to_alert(source, group_key, alert, note) for alert in note.alerts]


def label_fingerprint(labels: dict[str, str]) -> str:
    """The fingerprint Alertmanager itself gives a label set (FNV-1a 64 over sorted pairs)."""
    digest = _FNV64_OFFSET
    for name in sorted(labels):
        for part in (name.encode(), labels[name].encode()):
            for byte in (*part, _LABEL_SEPARATOR):
                digest = ((digest ^ byte) * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


def _derived_group_key(note: AmNotification) -> str:
    """Alertmanager's own form, `{}:{name="value", ...}`, over the group labels, else the
    labels every alert shares, else the alert names."""
    labels = note.group_labels or note.common_labels
    if not labels:
        names = sorted({a.labels.get("alertname", "") for a in note.alerts} - {""})
        labels = {"alertname": "|".join(names)} if names else {}
    pairs = ", ".join(f'{name}="{labels[name]}"' for name in sorted(labels))
    return f"{{}}:{{{pairs}}}"


def _to_alert(source: str, group_key: str, alert: _AmAlert, note: AmNotification) -> Alert:
    labels = dict(alert.labels)
    status = alert.status or note.status
    level, level_labels = _level(labels.get("severity"))
    # Grafana puts the rule's name in the group's labels only, when the alert's are its own.
    name = labels.get("alertname") or normalize.first_text(
        note.common_labels.get("alertname"), note.group_labels.get("alertname")
    )
    if name:
        labels.setdefault("alertname", name)
    said = alert.annotations
    return Alert(
        source=source,
        group_key=group_key,
        fingerprint=alert.fingerprint or label_fingerprint(alert.labels),
        status=AlertStatus(status),
        # kubernetes-mixin's older rules say it in `message`, many others only in
        # `description`
        title=normalize.title(
            name,
            normalize.first_text(said.get("summary"), said.get("message"), said.get("description")),
        )
        or normalize.untagged(note.title or "")
        or "unnamed alert",
        severity=level,
        starts_at=alert.starts_at,
        ends_at=_ends_at(alert, status),
        service=service_from_labels(labels),
        labels={**labels, **level_labels},
        annotations=dict(said),
        generator_url=_absolute(alert.generator_url, note.external_url),
    )


@functools.lru_cache(maxsize=256)  # a handful of words, on every alert
def _level(raw: str | None) -> tuple[Severity, Mapping[str, str]]:
    """The level of an alert's `severity` label, and the labels that say it."""
    level = severity.level(raw)
    return level, MappingProxyType(severity.labels(raw, level))


def _absolute(url: str | None, base: str | None) -> str | None:
    """A link people can open: Grafana 12's test alerts send `?orgId=1`, relative to the
    notification's `externalURL`; without a base a relative link is dropped."""
    if not url or urlsplit(url).scheme:
        return url or None
    return urljoin(base, url) if base and urlsplit(base).scheme else None


def _ends_at(alert: _AmAlert, status: Status) -> datetime | None:
    # A firing alert carries the time Alertmanager will consider it stale, not an end.
    return alert.ends_at if status == "resolved" else None
