"""Validation shared by the alert parsers: pydantic errors become `PayloadError`s naming the
field, and timestamps in the forms monitoring tools send become aware UTC datetimes."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError

from integrations.errors import PayloadError

M = TypeVar("M", bound=BaseModel)

# "Not set" as senders write it: Go's zero time.Time (Alertmanager's endsAt while an alert
# fires) and unix 0 (Cloud Monitoring's ended_at of an open incident).
_UNSET_TIMES = (datetime(1, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC))
# Seconds beyond this (the year 5138) are read as milli-, micro-, then nanoseconds.
_MAX_UNIX = 1e11
_UNIX_UNITS = (1, 1e3, 1e6, 1e9)


def validate(model: type[M], body: object, prefix: str = "") -> M:
    """Validate `body` against `model`; on failure raise PayloadError naming the first bad field.

    `prefix` is prepended to the field path when the body was nested in an outer document.
    """
    if not isinstance(body, dict):
        where = prefix or "payload"
        raise PayloadError(
            f"{where} must be a JSON object, got {type(body).__name__}", field=prefix or None
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        ctx = error.get("ctx") or {}
        message = str(ctx["error"]) if error["type"] == "value_error" else error["msg"]
        raise PayloadError(f"{field}: {message}", field=field or None) from exc


def parse_timestamp(value: object) -> datetime:
    """ISO 8601 (with `Z`, `+00:00` or `+0000`; naive means UTC) or unix seconds (or ms, µs,
    ns) → aware UTC."""
    if isinstance(value, str):
        return _text_time(value)
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _utc(_from_unix(value))
    raise ValueError(f"expected a time string or unix seconds, got {type(value).__name__}")


def parse_optional_timestamp(value: object) -> datetime | None:
    """Like `parse_timestamp`, but empty values, Go's zero time and unix 0 mean "not set"."""
    if value is None or value == "":
        return None
    parsed = parse_timestamp(value)
    return None if parsed in _UNSET_TIMES else parsed


@functools.lru_cache(maxsize=4096)  # a group's alerts repeat their times in every notification
def _text_time(text: str) -> datetime:
    return _utc(_from_text(text.strip()))


def _utc(parsed: datetime) -> datetime:
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _from_unix(number: float) -> datetime:
    """Unix time in seconds, or in milliseconds, microseconds or nanoseconds when the number
    is too large to be seconds of this era (New Relic and Datadog send milliseconds)."""
    seconds = next((number / unit for unit in _UNIX_UNITS if abs(number / unit) < _MAX_UNIX), None)
    try:
        if seconds is None:
            raise ValueError
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"unix time out of range: {number}") from None


def _from_text(text: str) -> datetime:
    if text[4:5] == "-":  # 2026-11-20T11:00:00Z, what nearly every sender sends: no float() try
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    try:
        seconds = float(text)
    except ValueError:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time or unix seconds: {text!r}") from None
    return _from_unix(seconds)


UtcDatetime = Annotated[datetime, BeforeValidator(parse_timestamp)]
OptionalUtcDatetime = Annotated[datetime | None, BeforeValidator(parse_optional_timestamp)]
