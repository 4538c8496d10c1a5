"""The normalized alert every source is parsed into."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# Labels that name the workload, in the order they are trusted. Kubernetes alerts
# (kube-prometheus) carry no `service`: the app label, the Deployment, the Job, the container or
# the pod name (without its ReplicaSet hash) say whose incident it is. Prometheus label names
# cannot hold "." or "/", so app.kubernetes.io/name also arrives sanitized. `job` (the scrape
# job) comes last: for kube-state-metrics alerts it names the exporter, not the workload.
SERVICE_LABELS: tuple[str, ...] = (
    "service",
    "app.kubernetes.io/name",
    "app_kubernetes_io_name",
    "label_app_kubernetes_io_name",
    "app",
    "label_app",
    "deployment",
    "job_name",
    "container",
    "pod",
    "job",
)
# A pod's generated suffix: ReplicaSet hash + random (Deployments), random (Jobs, DaemonSets),
# ordinal (StatefulSets).
_SAFE = "[bcdfghjklmnpqrstvwxz2-9]"  # the alphabet Kubernetes generates names from
_POD_SUFFIX = re.compile(rf"-{_SAFE}{{5,10}}-{_SAFE}{{2,5}}$|-{_SAFE}{{5}}$|-\d+$")


def service_from_labels(
    labels: Mapping[str, str], order: Sequence[str] = SERVICE_LABELS
) -> str | None:
    """The service an alert's labels name: the first of `order` present; a `pod` label counts
    without its generated suffix (checkout-7d9f6c8b5-x2v4q is checkout)."""
    for name in order:
        value = (labels.get(name) or "").strip()
        if value:
            return _POD_SUFFIX.sub("", value) or value if name == "pod" else value
    return None


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """Three levels, as the issue and on-call convention have them (`severity.py` maps every
    sender's words onto them)."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @staticmethod
    def worst(levels: Iterable[Severity]) -> Severity:
        """The most severe of `levels` (at least one)."""
        return max(levels, key=_RANK.__getitem__)

    @classmethod
    def _missing_(cls, value: object) -> Severity | None:
        # Rows and configs written when a fourth level, "high", sat under critical still say
        # it; any case of a level's name is that level.
        word = str(value).strip().lower()
        return cls.CRITICAL if word == "high" else next((s for s in cls if s.value == word), None)


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert instance, whatever its source.

    `group_key` decides the incident (an Alertmanager group, a CloudWatch alarm, a generic
    incident id); `fingerprint` identifies the alert inside that group.
    """

    source: str
    group_key: str
    fingerprint: str
    status: AlertStatus
    title: str
    severity: Severity
    starts_at: datetime
    service: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    ends_at: datetime | None = None
    generator_url: str | None = None
    logs: tuple[str, ...] = ()
    # False when the sender said nothing of time and `starts_at` is the time of receipt.
    timed: bool = True

    @property
    def signature(self) -> str:
        """What makes two alerts 'the same problem' across incidents: name + service."""
        name = self.labels.get("alertname") or self.title
        return f"{name}|{self.service or ''}"
