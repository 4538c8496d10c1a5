"""Weigh the model's answer against the rule engine's: the model confirms or rejects the offline
hypotheses, and an answer that contradicts strong evidence, or proves nothing, gives way to the
offline diagnosis, which says why. A weak model can then never make a diagnosis worse."""

from __future__ import annotations

from dataclasses import dataclass

from agent.types import Category, Diagnosis, DiagnosisSource

STRONG = 0.7  # an offline finding this sure is only overruled by the same category
MIN_EVIDENCE = 2
LEAD = 0.35  # the rules' own threshold for believing a finding (below it: a lead)


@dataclass(frozen=True, slots=True)
class Verdict:
    diagnosis: Diagnosis
    rejected: str | None = None  # why the model's answer was set aside, if it was


def reconcile(live: Diagnosis, offline: Diagnosis | None) -> Verdict:
    """The diagnosis to give: the model's when it stands, else the offline one saying why."""
    if offline is None or offline.category is Category.UNKNOWN:
        return Verdict(live)
    problem = _problem(live, offline)
    if problem is None:
        return Verdict(_supported(live, offline))
    note = (
        f"The model's answer ({live.category.value}, {live.model or 'LLM'}) was set aside: "
        f"{problem}. This is the rule engine's diagnosis."
    )
    kept = offline.model_copy(
        update={
            "source": DiagnosisSource.OFFLINE,
            "checks": [note, *offline.checks],
            "tokens": live.tokens,
            "tool_calls": list(dict.fromkeys([*offline.tool_calls, *live.tool_calls])),
        }
    )
    return Verdict(kept, problem)


def _problem(live: Diagnosis, offline: Diagnosis) -> str | None:
    strong = offline.confidence >= STRONG
    if live.category is Category.UNKNOWN:
        return "it named no cause where the rules found one"
    if strong and live.category is not offline.category:
        return (
            f"it contradicts strong evidence for {offline.category.value} "
            f"(confidence {offline.confidence:.2f})"
        )
    if (
        live.category is not offline.category
        and offline.confidence >= LEAD
        and len(live.evidence) < MIN_EVIDENCE
    ):
        return (
            f"it contradicts the rules' finding ({offline.category.value}) without two quotes "
            "from the tools' output to support it"
        )
    return None


def _supported(live: Diagnosis, offline: Diagnosis) -> Diagnosis:
    """The model's answer, with the rules' quotes (exact tool output) added where it agrees and
    cites fewer than two. Its action stands: the policy already dropped any it may not take."""
    if live.category is not offline.category:
        return live
    evidence = list(live.evidence)
    for e in offline.evidence:
        if len(evidence) >= MIN_EVIDENCE:
            break
        if all(e.quote != k.quote for k in evidence):
            evidence.append(e)
    return live.model_copy(update={"evidence": evidence})
