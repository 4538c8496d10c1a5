"""What an offline rule is, and the `Finding` it returns when its failure pattern matches."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from agent.types import ActionKind, Category, Evidence, IncidentContext, Observations

MAX_SCORE = 0.95
_SATURATION = 2.2  # how fast added evidence approaches certainty


def calibrated(strength: float) -> float:
    """Summed signal weights as a confidence: one strong signal (0.5) gives about 0.6,
    two or three independent ones 0.85-0.95; never above MAX_SCORE."""
    return round(min(MAX_SCORE, 0.97 * (1 - math.exp(-_SATURATION * max(0.0, strength)))), 3)


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's verdict: how well its pattern matches (0..1) and what it would tell a human."""

    rule: str
    category: Category
    action: ActionKind
    score: float
    headline: str  # the summary without the service name
    root_cause: str
    evidence: tuple[Evidence, ...]
    checks: tuple[str, ...]
    mitigation: str


class Rule(Protocol):
    name: str
    category: Category
    action: ActionKind

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        """The finding when this rule's failure pattern is present, else None."""
        ...


@dataclass(slots=True)
class Case:
    """A rule's running score and the evidence behind it, most telling first."""

    score: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)

    def add(self, weight: float, *evidence: Evidence | None) -> None:
        self.score += weight
        self.evidence.extend(e for e in evidence if e is not None)

    def cite(self, evidence: Iterable[Evidence | None]) -> None:
        """Quote supporting evidence that does not change the score."""
        self.evidence.extend(e for e in evidence if e is not None)

    def finding(
        self,
        rule: Rule,
        *,
        headline: str,
        root_cause: str,
        checks: Iterable[str],
        mitigation: str,
        action: ActionKind | None = None,
    ) -> Finding:
        return Finding(
            rule=rule.name,
            category=rule.category,
            action=rule.action if action is None else action,
            score=calibrated(self.score),
            headline=headline,
            root_cause=root_cause,
            evidence=tuple(self.evidence),
            checks=tuple(checks),
            mitigation=mitigation,
        )
