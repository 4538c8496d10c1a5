"""Structured logs: one line per event (key=value on a terminal, JSON otherwise).

No secret is written: values under secret-sounding keys are dropped, and every string (the
event, its values, a traceback, stdlib log records) is masked for known token shapes and the
configuration's own secrets (`mask_with`, set by the runtime once the config is loaded).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from agent.redact import Redactor

SECRET_KEYS = frozenset(
    {"token", "api_key", "password", "secret", "authorization", "signing_secret"}
)
_masker = Redactor()


def mask_with(redactor: Redactor) -> None:
    """Mask log text with `redactor` from now on (its patterns include configured secrets)."""
    global _masker
    _masker = redactor


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = "***"
    return event


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return _masker.redact(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if value is None or isinstance(value, int | float):
        return value
    return _masker.redact(str(value))


def _mask_values(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        event[key] = _masked(value)
    return event


class MaskRecords(logging.Filter):
    """The same masking for stdlib records (uvicorn, httpx, libraries)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = _masker.redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = _masker.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup(level: str | None = None, json: bool | None = None, stream: TextIO | None = None) -> None:
    level = (level or os.environ.get("OPSBOT_LOG_LEVEL") or "INFO").upper()
    stream = stream or sys.stderr
    json = (not stream.isatty()) if json is None else json
    logging.basicConfig(level=level, stream=stream, format="%(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskRecords) for f in handler.filters):
            handler.addFilter(MaskRecords())
    for noisy in ("httpx", "httpcore", "slack_bolt", "alembic", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            _mask_values,
            structlog.processors.JSONRenderer()
            if json
            else structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
