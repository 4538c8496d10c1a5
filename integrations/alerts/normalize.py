"""What every sender's parser shares: one way to build an `Alert` (its severity by
`severity.py`), resolved words, readable titles, label values and bounded keys."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from integrations.alerts import severity
from integrations.alerts.model import Alert, AlertStatus

TITLE_MAX = 120
KEY_MAX = 200
# "[FIRING:1] ..." (Grafana), "[Triggered] [P1] ..." (Datadog): state tags before a title.
_STATE_TAGS = re.compile(r"^(?:\s*\[[^\]]*\]\s*)+")

# Status words that mean "this alert is over".
RESOLVED_WORDS = frozenset(
    {"resolved", "resolve", "ok", "closed", "close", "recovered", "recovery", "cleared"}
    | {"clear", "normal", "inactive", "up", "success", "succeeded", "deactivated"}
    | {"canceled", "cancelled"}
)


def alert(
    source: str,
    key: str,
    *,
    title: str,
    resolved: bool,
    raw_severity: object = None,
    scale: severity.Scale = severity.COMMON,
    at: datetime | None = None,
    started: datetime | None = None,
    service: str | None = None,
    labels: Mapping[str, object] | None = None,
    annotations: Mapping[str, object] | None = None,
    url: str | None = None,
    fingerprint: str | None = None,
    logs: tuple[str, ...] = (),
) -> Alert:
    """One sender's alert, normalized: `at` is when this change happened (the time of receipt
    when the sender gave none), `started` when the alert began (default `at`); the level comes
    from `raw_severity` on the sender's `scale`, and the sender's word is kept; keys are
    bounded; only scalar labels and annotations are kept."""
    level = severity.level(raw_severity, scale)
    when = at or datetime.now(UTC)
    return Alert(
        source=source,
        group_key=bounded_key(key),
        fingerprint=bounded_key(fingerprint or key),
        status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
        title=title,
        severity=level,
        starts_at=started or when,
        ends_at=when if resolved else None,
        service=text(service),
        labels={**scalar_labels(labels or {}), **severity.labels(raw_severity, level)},
        annotations=scalar_labels(annotations or {}),
        generator_url=text(url),
        logs=logs,
        timed=(at or started) is not None,
    )


def is_resolved(status: object) -> bool:
    word = text(status)
    return word is not None and word.lower() in RESOLVED_WORDS


def title(name: object, summary: object = None, limit: int = TITLE_MAX) -> str | None:
    """The alert's name first, then its summary (`thing_dead: No things for over 10 minutes`),
    the summary's first line only, cut at a word to `limit` characters."""
    return _title(text(name), text(summary), limit)


@functools.lru_cache(maxsize=4096)  # a group's alerts mostly share their name and summary
def _title(first: str | None, summary: str | None, limit: int) -> str | None:
    second = _first_line(summary)
    if first and second and first.lower() not in second.lower():
        joined = f"{first}: {second}"
    else:
        joined = second or first or ""
    return shorten(joined, limit) or None


def untagged(value: str) -> str:
    """A sender's title without the state tags it starts with (`[FIRING:1] High load`)."""
    return _STATE_TAGS.sub("", value).strip() or value


def shorten(value: str, limit: int = TITLE_MAX) -> str:
    if len(value) <= limit:
        return value
    cut = value[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"


def text(value: object) -> str | None:
    """A scalar as stripped text; None for absent, empty, or structured values."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    stripped = str(value).strip()
    return stripped or None


def first_text(*values: object) -> str | None:
    return next((found for value in values if (found := text(value)) is not None), None)


def scalar_labels(fields: Mapping[str, object], skip: Iterable[str] = ()) -> dict[str, str]:
    """The scalar entries of a mapping as label strings (nested values are left out)."""
    skipped = set(skip)
    return {
        key: found
        for key, value in fields.items()
        if key not in skipped and (found := text(value)) is not None
    }


def bounded_key(key: str, limit: int = KEY_MAX) -> str:
    """A key short enough to store (fingerprints are at most 200 characters): a long one keeps
    its readable start and ends in a digest of the whole."""
    if len(key) <= limit:
        return key
    return f"{key[: limit - 25]}~{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def stable_key(*parts: object) -> str:
    """A short key from several parts, the same for the same parts in every process."""
    joined = "\x1f".join(text(part) or "" for part in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:24]


def _first_line(value: object) -> str | None:
    found = text(value)
    if found is None:
        return None
    return next((line.strip() for line in found.splitlines() if line.strip()), None)
