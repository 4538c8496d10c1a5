"""The senders opsbot understands, by name, and the shape detector the generic endpoint uses
to pick a sender's parser from a body alone."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from integrations.alerts import (
    alertmanager,
    azure,
    datadog,
    gcp,
    generic,
    grafana,
    newrelic,
    opsgenie,
    pagerduty,
    pingdom,
    sentry,
    zabbix,
)
from integrations.alerts.model import Alert
from integrations.errors import PayloadError

Parser = Callable[[object], list[Alert]]

# Detection order matters only where shapes overlap: Grafana's unified body is an
# Alertmanager notification with more keys, so Grafana is asked first.
_NAMED: tuple[ModuleType, ...] = (
    grafana,
    alertmanager,
    azure,
    gcp,
    datadog,
    newrelic,
    pingdom,
    sentry,
    zabbix,
    opsgenie,
    pagerduty,
)
# `/webhooks/<name>`: each sender's own endpoint (alertmanager has its own route).
NAMED: dict[str, Parser] = {module.SOURCE: module.parse for module in _NAMED}
SNS_KEYS = frozenset({"Type", "TopicArn", "Signature"})


def detect(body: object) -> str | None:
    """The named sender whose documented body this looks like, if any."""
    if not isinstance(body, dict):
        return None
    return next((module.SOURCE for module in _NAMED if module.matches(body)), None)


def parse_any(body: object) -> list[Alert]:
    """A sender's body recognised by its shape, else the generic contract (or anything with
    a title). An SNS delivery is refused: only `/webhooks/sns` checks its signature; so is a
    malformed Alertmanager notification, with Alertmanager's own error."""
    if isinstance(body, dict) and body.keys() >= SNS_KEYS:
        raise PayloadError("an AWS SNS delivery: post it to /webhooks/sns, which verifies it")
    source = detect(body)
    if source:
        return NAMED[source](body)
    if isinstance(body, dict) and alertmanager.attempted(body):
        return alertmanager.parse(body)  # refused, saying what is wrong with it
    return generic.parse(body)
