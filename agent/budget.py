"""Fit tool output into a character budget: keep what a responder reads first, say what was cut.

Logs keep error-like and newest lines and collapse repeats; metric series become a few numbers
per series (first/min/max/last, baseline vs recent, a coarse shape) instead of every point.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from integrations.observability.model import Point

_IMPORTANT = re.compile(
    r"error|exception|fatal|panic|timeout|timed out|traceback|killed|refused|denied|"
    r"oom|out of memory|crash|back-off|fail|unavailable|exceeded|expired",
    re.I,
)
# Timestamps, hex ids and numbers differ between otherwise identical lines.
_VARIABLE = re.compile(r"0x[0-9a-f]+|[0-9a-f]{8,}|\d+(?:[.:,]\d+)*", re.I)
_SHAPE_BUCKETS = 12


def cut_text(text: str, budget_chars: int) -> str:
    """`text` itself when it fits, else its head and a note of how much was cut."""
    if len(text) <= budget_chars:
        return text
    note = f"\n[cut: {len(text) - budget_chars} of {len(text)} chars omitted]"
    return text[: max(budget_chars - len(note), 0)] + note


def cut_logs(lines: Sequence[str], budget_chars: int) -> str:
    """Log lines (oldest first) within `budget_chars`, still oldest first.

    Repeats (equal but for numbers and ids) collapse into their newest copy with a count;
    when the rest does not fit, error-like lines win over others and newer over older.
    """
    entries = _collapse(lines)
    text = "\n".join(entry.text for entry in entries)
    if len(text) <= budget_chars:
        return text
    room = budget_chars - len(_cut_note(len(lines), len(lines))) - 1
    by_priority = sorted(
        range(len(entries)), key=lambda i: (not _IMPORTANT.search(entries[i].text), -i)
    )
    chosen: list[int] = []
    for i in by_priority:
        if len(entries[i].text) + 1 <= room:
            chosen.append(i)
            room -= len(entries[i].text) + 1
    if not chosen:
        # Not even one whole line fits: show the most important one, cut.
        first = entries[by_priority[0]]
        return f"{cut_text(first.text, room)}\n{_cut_note(len(lines) - 1, len(lines))}"
    shown = sum(entries[i].count for i in chosen)
    body = "\n".join(entries[i].text for i in sorted(chosen))
    return f"{body}\n{_cut_note(len(lines) - shown, len(lines))}"


def _cut_note(omitted: int, total: int) -> str:
    return f"[cut: {omitted} of {total} lines omitted; narrow with grep]"


def summarize_metrics(series: Mapping[str, Sequence[Point]]) -> str:
    """One short paragraph per series, whatever its length."""
    return "\n".join(_summarize(name, points) for name, points in series.items())


def _summarize(name: str, points: Sequence[Point]) -> str:
    if not points:
        return f"{name}: no data"
    values = [value for _, value in points]
    span_min = (points[-1][0] - points[0][0]) / 60
    recent_n = max(1, len(values) // 10)
    baseline = statistics.median(values[: max(1, len(values) - recent_n)])
    recent = statistics.fmean(values[-recent_n:])
    peak_ago = (points[-1][0] - points[values.index(max(values))][0]) / 60
    return (
        f"{name}: {len(values)} points over {span_min:.0f}m; first={_n(values[0])} "
        f"min={_n(min(values))} max={_n(max(values))} (max {peak_ago:.0f}m ago) "
        f"last={_n(values[-1])}; baseline={_n(baseline)} recent={_n(recent)}; "
        f"shape: {' '.join(_n(v) for v in _shape(values))}"
    )


def _shape(values: list[float]) -> list[float]:
    """Bucket means, so the model sees a rise, a drop or a saw-tooth without every point."""
    if len(values) <= _SHAPE_BUCKETS:
        return values
    size = len(values) / _SHAPE_BUCKETS
    return [
        statistics.fmean(values[int(i * size) : int((i + 1) * size)]) for i in range(_SHAPE_BUCKETS)
    ]


def _n(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True, slots=True)
class _Entry:
    text: str
    count: int


def _collapse(lines: Sequence[str]) -> list[_Entry]:
    """Each distinct line once, at its newest position, suffixed with `(×N)` when repeated."""
    counts: dict[str, int] = {}
    newest: dict[str, int] = {}
    for index, line in enumerate(lines):
        key = _VARIABLE.sub("#", line)
        counts[key] = counts.get(key, 0) + 1
        newest[key] = index
    return [
        _Entry(f"{lines[i]}  (×{counts[key]})" if counts[key] > 1 else lines[i], counts[key])
        for key, i in sorted(newest.items(), key=lambda item: item[1])
    ]
