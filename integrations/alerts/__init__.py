"""Alert payload parsers: each turns a source's body into normalized `Alert`s, with no I/O."""

from integrations.alerts.model import (
    SERVICE_LABELS,
    Alert,
    AlertStatus,
    Severity,
    service_from_labels,
)

__all__ = ["SERVICE_LABELS", "Alert", "AlertStatus", "Severity", "service_from_labels"]
