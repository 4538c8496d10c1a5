"""Weighing a model's answer against the rules': what stands and what gives way."""

from __future__ import annotations

from agent.types import Category, Diagnosis, DiagnosisSource, Evidence
from agent.verdict import reconcile


def diagnosis(
    category: Category, confidence: float, quotes: int, source: DiagnosisSource
) -> Diagnosis:
    return Diagnosis(
        summary="s",
        root_cause="r",
        category=category,
        evidence=[Evidence(tool="logs", quote=f"line {i}") for i in range(quotes)],
        checks=["first check"],
        confidence=confidence,
        source=source,
    )


OFFLINE = DiagnosisSource.OFFLINE
LIVE = DiagnosisSource.LIVE


def test_a_weak_finding_is_overruled_only_with_two_quotes_from_the_tools() -> None:
    rules = diagnosis(Category.DEPENDENCY_DOWN, 0.5, 3, OFFLINE)
    thin = reconcile(diagnosis(Category.DB_LATENCY, 0.9, 1, LIVE), rules)
    assert thin.rejected is not None and thin.diagnosis.category is Category.DEPENDENCY_DOWN
    assert thin.diagnosis.checks[0].startswith("The model's answer (db_latency")
    argued = reconcile(diagnosis(Category.DB_LATENCY, 0.9, 2, LIVE), rules)
    assert argued.rejected is None and argued.diagnosis.category is Category.DB_LATENCY


def test_a_strong_finding_is_never_overruled_and_unknown_never_wins() -> None:
    rules = diagnosis(Category.MEMORY_LEAK, 0.85, 3, OFFLINE)
    assert reconcile(diagnosis(Category.CPU_SATURATION, 0.9, 4, LIVE), rules).rejected
    assert reconcile(diagnosis(Category.UNKNOWN, 0.9, 0, LIVE), rules).rejected


def test_without_a_rule_finding_the_model_answers_alone() -> None:
    live = diagnosis(Category.DISK_FULL, 0.6, 0, LIVE)
    assert reconcile(live, diagnosis(Category.UNKNOWN, 0.2, 2, OFFLINE)).diagnosis == live
    assert reconcile(live, None).diagnosis == live
