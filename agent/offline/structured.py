"""Structured (JSON) log lines read as fields: the level (words, or pino/bunyan numbers), the
message, and numeric gauges such as pool_usage_percent or active_connections, so rules judge
values instead of scanning the JSON as flat text."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from agent.offline.signals import clip
from agent.types import Evidence

_LEVEL_KEYS = ("level", "severity", "lvl", "log.level", "levelname", "loglevel")
_MESSAGE_KEYS = ("message", "msg", "event", "error", "err", "error.message")
_ERROR_WORDS = {"error", "err", "fatal", "critical", "crit", "panic", "alert", "emerg", "severe"}
_PINO_ERROR = 50  # pino/bunyan: 50 error, 60 fatal
_LATENCY_KEY = re.compile(
    r"^(responseTime|response_time(_ms)?|duration(_ms)?|latency(_ms)?|elapsed(_ms)?|took(_ms)?|"
    r"request_time|time_ms|db\.execution_time_ms|execution_time_ms)$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Record:
    """One JSON log line: its position, the line itself, and its fields flattened."""

    index: int
    line: str
    level: str | None
    message: str
    numbers: dict[str, float] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.level == "error"

    @property
    def evidence(self) -> Evidence:
        return Evidence(tool="logs", quote=clip(self.line))

    def latency_ms(self) -> float | None:
        """The request or operation time the line reports, in milliseconds."""
        for key, value in self.numbers.items():
            if _LATENCY_KEY.match(key.rsplit(".", 1)[-1]) or _LATENCY_KEY.match(key):
                seconds = key.endswith(("_s", "_seconds")) or key in ("request_time",)
                return value * 1000 if seconds else value
        return None


def records(lines: Sequence[str]) -> list[Record]:
    return list(_records(tuple(lines)))


@lru_cache(maxsize=8)
def _records(lines: tuple[str, ...]) -> tuple[Record, ...]:
    found: list[Record] = []
    for i, line in enumerate(lines):
        start = line.find("{")
        if start < 0 or not line.rstrip().endswith("}"):
            continue
        try:
            data = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(data, dict):
            found.append(_record(i, line, data))
    return tuple(found)


def _flatten(data: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _level(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "error" if value >= _PINO_ERROR else "warn" if value >= 40 else "info"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _ERROR_WORDS:
            return "error"
        return "warn" if word.startswith("warn") else word or None
    return None


def _record(index: int, line: str, data: dict[str, object]) -> Record:
    flat = _flatten(data)
    level = next((_level(flat[k]) for k in _LEVEL_KEYS if k in flat), None)
    message = next((str(flat[k]) for k in _MESSAGE_KEYS if isinstance(flat.get(k), str)), "")
    numbers = {
        k: float(v)
        for k, v in flat.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    text = {k: v for k, v in flat.items() if isinstance(v, str)}
    return Record(index, line, level, message, numbers, text)


def gauge(record: Record, *names: str) -> float | None:
    """The first of `names` the record carries (matched on the last part of a dotted key)."""
    for key, value in record.numbers.items():
        if key.rsplit(".", 1)[-1] in names:
            return value
    return None
