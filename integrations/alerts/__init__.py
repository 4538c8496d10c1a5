"""Alert payload parsers: each turns a source's body into normalized `Alert`s, with no I/O."""

from integrations.alerts.model import Alert, AlertStatus, Severity

__all__ = ["Alert", "AlertStatus", "Severity"]
