"""How bad an alert is: every sender's words and numbers onto opsbot's three levels (critical,
warning, info), in this one table; the sender's own word is kept as `source_severity`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from integrations.alerts.model import Severity

ORIGINAL_LABEL = "source_severity"
DEFAULT = Severity.WARNING  # a sender that says nothing, or a word no table knows

Scale = Mapping[str, Severity]


def _scale(*, critical: Iterable[str], warning: Iterable[str], info: Iterable[str]) -> Scale:
    levels = ((Severity.CRITICAL, critical), (Severity.WARNING, warning), (Severity.INFO, info))
    return {word: level for level, words in levels for word in words}


# | sender's word or number                                            | level    |
# | critical crit fatal emergency emerg alert alarm page disaster severe | critical |
# | high urgent major error err down; P0 P1 P2; Sev0 Sev1 Sev2; 0 1 2    |          |
# | warning warn minor medium moderate average; P3; Sev3; 3              | warning  |
# | info informational information notice low none debug verbose trace  | info     |
# | ok success "not classified"; P4 P5; Sev4 Sev5; 4 5                   |          |
# These cover PagerDuty Events v2 (critical, error, warning, info), Opsgenie and Datadog
# priorities (P1 Critical, P2 High, P3 Moderate, P4 Low, P5 Informational), Datadog's alert
# types (error, warning, info, success), Sentry's levels (fatal, error, warning, info, debug),
# Zabbix's severity names (Not classified, Information, Warning, Average, High, Disaster),
# Kapacitor's levels and syslog's names. "high" was a level of its own before there were
# three, so configs and stored rows that say it are read as critical.
COMMON = _scale(
    critical=(
        *("critical", "crit", "fatal", "emergency", "emerg", "alert", "alarm", "page"),
        *("disaster", "severe", "high", "urgent", "major", "error", "err", "down"),
        *("p0", "p1", "p2", "sev0", "sev-0", "sev1", "sev-1", "sev2", "sev-2", "0", "1", "2"),
    ),
    warning=(
        *("warning", "warn", "minor", "medium", "moderate", "average", "p3", "sev3", "sev-3"),
        "3",
    ),
    info=(
        *("info", "informational", "information", "notice", "low", "none", "debug"),
        *("verbose", "trace", "ok", "success", "not classified"),
        *("p4", "p5", "sev4", "sev-4", "sev5", "sev-5", "4", "5"),
    ),
)
# Senders whose numbers mean something else than the common ones (their words are common).
# Azure Monitor: Sev0 Critical, Sev1 Error, Sev2 Warning, Sev3 Informational, Sev4 Verbose.
AZURE = {
    **COMMON,
    **_scale(critical=("sev0", "0", "sev1", "1"), warning=("sev2", "2"), info=("sev3", "3")),
}
# Zabbix {EVENT.NSEVERITY}: 0 Not classified, 1 Information, 2 Warning, 3 Average, 4 High,
# 5 Disaster.
ZABBIX = {**COMMON, **_scale(critical=("4", "5"), warning=("2", "3"), info=("0", "1"))}


def known(raw: object, scale: Scale = COMMON) -> Severity | None:
    """The level a sender's word or number means on its scale, if the scale knows it; a
    word made of several (`ALERT_CRITICALITY_LEVEL_WARNING`) means its last known one."""
    word = _word(raw)
    if word is None:
        return None
    found = scale.get(word.lower())
    if found is None:
        parts = (scale.get(part) for part in reversed(re.split(r"[^a-z0-9]+", word.lower())))
        found = next((level for level in parts if level is not None), None)
    return found


def level(raw: object, scale: Scale = COMMON) -> Severity:
    """The level a sender's word or number means; warning when it said none or an unknown."""
    return known(raw, scale) or DEFAULT


def labels(raw: object, found: Severity) -> dict[str, str]:
    """`severity` (the level, which routes match on) and, when the sender said it
    differently, its own word under `source_severity`."""
    result = {"severity": found.value}
    word = _word(raw)
    if word is not None and word.lower() != found.value:
        result[ORIGINAL_LABEL] = word
    return result


def _word(raw: object) -> str | None:
    if raw is None or isinstance(raw, bool | dict | list):
        return None
    return str(raw).strip() or None
