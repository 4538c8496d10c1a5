"""Tool output fits its budget and keeps what a responder reads first."""

from __future__ import annotations

from agent.budget import cut_logs, cut_text, summarize_metrics


def _noisy_log(total: int) -> list[str]:
    lines = [
        f"2026-11-20T07:{i // 60:02d}:{i % 60:02d}Z INFO GET /{_word(i)} served in {i % 97}ms"
        for i in range(total)
    ]
    lines[100] = "2026-11-20T07:01:40Z ERROR java.lang.OutOfMemoryError: Java heap space"
    lines[500] = "2026-11-20T07:08:20Z WARN upstream timeout after 5000ms (payments)"
    return lines


def _word(i: int) -> str:
    """Distinct letters per line, so lines differ by more than numbers."""
    return "".join(chr(ord("a") + (i // 26**k) % 26) for k in range(3))


def test_logs_that_fit_are_returned_whole() -> None:
    lines = ["starting", "ready on :8080"]
    assert cut_logs(lines, 1000) == "starting\nready on :8080"


def test_repeated_lines_collapse_ignoring_numbers_and_timestamps() -> None:
    lines = [f"2026-11-20T07:00:{i:02d}Z retrying connection to db-{i} in 5s" for i in range(37)]
    out = cut_logs([*lines, "giving up"], 10_000)
    assert out.splitlines() == [f"{lines[-1]}  (×37)", "giving up"]


def test_over_budget_keeps_errors_and_newest_lines_and_says_what_was_cut() -> None:
    lines = _noisy_log(1000)
    out = cut_logs(lines, 2000)
    assert len(out) <= 2000
    assert "OutOfMemoryError: Java heap space" in out
    assert "upstream timeout after 5000ms" in out
    assert lines[-1] in out  # the newest line
    assert lines[10] not in out  # an old, ordinary line
    kept = out.splitlines()[:-1]
    assert kept == sorted(kept, key=lines.index)  # still oldest first
    note = out.splitlines()[-1]
    assert note == f"[cut: {1000 - len(kept)} of 1000 lines omitted; narrow with grep]"


def test_a_single_huge_line_is_cut_not_dropped() -> None:
    out = cut_logs(["x" * 10_000 + " panic: boom"], 500)
    assert len(out) <= 500
    assert out.startswith("xxx")
    assert "[cut:" in out


def test_cut_text() -> None:
    assert cut_text("short", 100) == "short"
    out = cut_text("a" * 1000, 100)
    assert len(out) <= 100
    assert out.endswith("[cut: 900 of 1000 chars omitted]")


def test_a_day_of_metrics_costs_a_few_hundred_chars() -> None:
    start = 1_795_000_000
    memory = [(start + 60 * i, 40 + i * 0.03) for i in range(1440)]  # slow leak over a day
    memory[-5:] = [(t, 97.0) for t, _ in memory[-5:]]
    flat = [(start + 60 * i, 0.01) for i in range(1440)]
    out = summarize_metrics({"memory_utilization_pct": memory, "http_error_ratio": flat})
    lines = out.splitlines()
    assert len(lines) == 2
    assert all(len(line) < 400 for line in lines)
    assert "memory_utilization_pct: 1440 points over 1439m" in lines[0]
    assert "first=40 " in lines[0]
    assert "max=97 " in lines[0]
    assert "last=97;" in lines[0]
    assert "min=0.01 max=0.01" in lines[1]


def test_empty_series() -> None:
    assert summarize_metrics({"cpu": []}) == "cpu: no data"
