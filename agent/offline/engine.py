"""Run every rule over the observations, keep the best finding, and turn it into a Diagnosis
(or a triage answer built from what was observed when no rule matches)."""

from __future__ import annotations

import math
import re

from agent.offline import (
    bad_deploy,
    certificate,
    config_value,
    cpu_saturation,
    crash_loop,
    db_connections,
    db_latency,
    dependency_down,
    disk_full,
    image_pull,
    kube,
    memory_leak,
    network_policy,
    oom_killed,
    probe_failure,
    scheduling,
    signals,
    slow_span,
    traffic_spike,
)
from agent.offline.model import MAX_SCORE, Finding, Rule
from agent.types import (
    ActionKind,
    Category,
    Diagnosis,
    DiagnosisSource,
    Evidence,
    IncidentContext,
    Observations,
    PastFix,
    ProposedAction,
)

# Order breaks ties: the more specific mechanism first, "something changed" last.
RULES: tuple[Rule, ...] = (
    certificate.RULE,
    disk_full.RULE,
    image_pull.RULE,
    scheduling.RULE,
    oom_killed.RULE,
    crash_loop.RULE,
    memory_leak.RULE,
    db_connections.RULE,
    slow_span.RULE,
    db_latency.RULE,
    network_policy.RULE,
    config_value.RULE,
    dependency_down.RULE,
    cpu_saturation.RULE,
    traffic_spike.RULE,
    probe_failure.RULE,
    bad_deploy.RULE,
)
MODEL = "offline-rules"
MIN_SCORE = 0.35  # below this a finding is only a lead: said so, with no action
UNKNOWN_CONFIDENCE = 0.2
RUNNER_UP_SCORE = 0.5
MAX_EVIDENCE = 6
MIN_EVIDENCE = 3
_PAST_FIX_NUDGE = 0.05
_SUMMARY_MAX = 200
_ERROR_LINE = re.compile(
    r"\b(ERROR|FATAL|CRITICAL|PANIC|panic|[A-Z]\w*(Error|Exception))\b|\berror\b"
)
_VERBS = {
    ActionKind.RESTART: "restart it",
    ActionKind.SCALE_UP: "scale it up",
    ActionKind.ROLLBACK: "roll it back",
}


def diagnose(ctx: IncidentContext, obs: Observations) -> Diagnosis:
    """The offline engine's diagnosis: deterministic, no I/O."""
    findings = [f for rule in RULES if (f := rule.check(ctx, obs)) is not None]
    findings.sort(key=lambda f: -f.score)  # stable: RULES order breaks ties
    if not findings:
        return _triage(ctx, obs)
    best = findings[0]
    if best.score < MIN_SCORE:
        return _lead(ctx, obs, best)
    service = ctx.service or "the service"
    action, mitigation = _permitted(best.action, best.mitigation, ctx, service)
    action, mitigation = _possible(action, mitigation, kube.workload(ctx, obs))
    confidence, past = _past_fixes(best.score, action, obs.past_fixes)
    checks = list(best.checks)
    runner_up = next(
        (f for f in findings[1:] if f.category != best.category and f.score >= RUNNER_UP_SCORE),
        None,
    )
    if runner_up is not None:
        checks.append(f"If that is ruled out, consider {runner_up.category}: {runner_up.headline}")
    return Diagnosis(
        summary=_one_line(f"{service}: {best.headline}"),
        root_cause=best.root_cause,
        category=best.category,
        evidence=_select(list(best.evidence), _observed(ctx, obs)),
        checks=checks,
        mitigation=mitigation,
        proposed_action=ProposedAction(action=action, service=ctx.service),
        confidence=confidence,
        source=DiagnosisSource.OFFLINE,
        model=MODEL,
        tool_calls=_tool_calls(obs),
        past_fixes=past,
    )


def _permitted(
    action: ActionKind, mitigation: str, ctx: IncidentContext, service: str
) -> tuple[ActionKind, str]:
    """Only propose an action the service allows; otherwise say what would have been done."""
    if action is ActionKind.NONE or not ctx.allowed_actions or action in ctx.allowed_actions:
        return action, mitigation
    return (
        ActionKind.NONE,
        f"{mitigation}. I would {_VERBS[action]}, but {action} is not an allowed action for "
        f"{service}: a human has to do it.",
    )


def _possible(
    action: ActionKind, mitigation: str, workload: kube.Workload
) -> tuple[ActionKind, str]:
    """No restart or scale for a Job or a bare Pod, no rollback without an earlier revision."""
    if action in (ActionKind.RESTART, ActionKind.SCALE_UP) and not workload.restartable:
        kind = "a Job" if workload.job else "a bare Pod"
        return ActionKind.NONE, f"{mitigation}. It runs as {kind}: a human must re-run it"
    if action is ActionKind.ROLLBACK and workload.can_roll_back is False:
        return ActionKind.NONE, f"{mitigation}. There is no earlier revision to roll back to"
    return action, mitigation


def _past_fix_note(fixes: list[PastFix]) -> str | None:
    """'last time, restart fixed it (2 of 2 times)' for the most frequent past fix."""
    if not fixes:
        return None
    top = fixes[0]
    return f"last time, {top.action} fixed it ({top.times} of {top.of} times)"


def _past_fixes(score: float, action: ActionKind, fixes: list[PastFix]) -> tuple[float, str | None]:
    """The note on past fixes, and the confidence nudged up when they back this action."""
    agrees = bool(fixes) and fixes[0].action == action.value and fixes[0].times * 2 >= fixes[0].of
    return (min(MAX_SCORE, score + _PAST_FIX_NUDGE) if agrees else score), _past_fix_note(fixes)


def _select(primary: list[Evidence], extra: list[Evidence]) -> list[Evidence]:
    """The rule's evidence first, without repeats, padded with observations to at least 3."""
    chosen: list[Evidence] = []
    for pool, limit in ((primary, MAX_EVIDENCE), (extra, MIN_EVIDENCE)):
        for e in pool:
            if len(chosen) >= limit:
                break
            if all(e.quote != c.quote for c in chosen):
                chosen.append(e)
    return chosen


def _movers(obs: Observations) -> list[signals.Shape]:
    """Metrics that moved most against their own baseline, biggest change first."""
    shapes = [s for n, p in obs.metrics.items() if (s := signals.shape(n, p)) and s.baseline > 0]
    moved = [s for s in shapes if s.current > 0 and abs(math.log(s.current / s.baseline)) >= 0.4]
    return sorted(moved, key=lambda s: -abs(math.log(s.current / s.baseline)))


def _observed(ctx: IncidentContext, obs: Observations) -> list[Evidence]:
    """Generic evidence: what moved, what failed, what changed."""
    evidence: list[Evidence] = [m.evidence for m in _movers(obs)[:2]]
    errors = [line for line in obs.logs if _ERROR_LINE.search(line)]
    evidence.extend(Evidence(tool="logs", quote=signals.clip(line)) for line in errors[:2])
    evidence.extend(signals.issue_evidence(i) for i in obs.errors[:1])
    if obs.health is not None and not obs.health.healthy:
        evidence.append(Evidence(tool="health", quote=signals.health_quote(obs.health)))
    if obs.deploys:
        newest = min(obs.deploys, key=lambda d: d.minutes_ago)
        evidence.append(signals.deploy_evidence(newest))
    evidence.extend(
        Evidence(tool="alert", quote=signals.clip(t)) for t in signals.alert_texts(ctx)[:3]
    )
    return evidence


def _lead(ctx: IncidentContext, obs: Observations, weak: Finding) -> Diagnosis:
    """No rule is sure: the strongest lead, named with a low confidence and no action, and
    the triage steps to confirm or rule it out."""
    service = ctx.service or "the service"
    triage = _triage(ctx, obs)
    return triage.model_copy(
        update={
            "summary": _one_line(f"{service}: likely {weak.headline} (weak evidence)"),
            "root_cause": f"Most likely, with weak evidence: {weak.root_cause}",
            "category": weak.category,
            "evidence": _select(list(weak.evidence), _observed(ctx, obs)),
            "checks": [*weak.checks[:2], *triage.checks],
            "confidence": round(min(weak.score, MIN_SCORE - 0.05), 3),
        }
    )


def _triage(ctx: IncidentContext, obs: Observations) -> Diagnosis:
    """No rule matches at all: generic first steps built from what the tools did return."""
    service = ctx.service or "the service"
    checks: list[str] = []
    movers = _movers(obs)
    checks.extend(f"Find out why {m.describe()}" for m in movers[:2])
    errors = [line for line in obs.logs if _ERROR_LINE.search(line)]
    if errors:
        checks.append(f"Read the first error in the logs: {signals.clip(errors[0])[:120]}")
    if obs.errors:
        checks.append(
            f"Look at the top error-tracker issue: {signals.clip(obs.errors[0].title)[:120]}"
        )
    if obs.health is not None and not obs.health.healthy:
        checks.append(f"The health check answers {signals.health_quote(obs.health)[:120]}")
    if obs.deploys:
        newest = min(obs.deploys, key=lambda d: d.minutes_ago)
        checks.append(f"Check whether the latest deploy is related: {signals.deploy_quote(newest)}")
    if not (obs.logs or obs.metrics):
        checks.append(f"No logs or metrics were available: open {service}'s dashboards and logs")
    checks.append(f"Check {service}'s dependencies and recent changes to its environment")
    past = _past_fix_note(obs.past_fixes)
    return Diagnosis(
        summary=_one_line(f"{service}: cause unclear from the evidence ({ctx.title})"),
        root_cause="No known failure pattern matches the logs, metrics and changes observed.",
        category=Category.UNKNOWN,
        evidence=_select([], _observed(ctx, obs)),
        checks=checks,
        mitigation="Investigate before acting: no automatic action is safe without a cause"
        + (f"; {past}" if past else ""),
        proposed_action=ProposedAction(action=ActionKind.NONE, service=ctx.service),
        confidence=UNKNOWN_CONFIDENCE,
        source=DiagnosisSource.OFFLINE,
        model=MODEL,
        tool_calls=_tool_calls(obs),
        past_fixes=past,
    )


def _tool_calls(obs: Observations) -> list[str]:
    present = {
        "logs": bool(obs.logs),
        "kubernetes": bool(obs.kubernetes),
        "metrics": bool(obs.metrics),
        "deploys": bool(obs.deploys),
        "errors": bool(obs.errors),
        "health": obs.health is not None,
        "past_incidents": bool(obs.past_fixes),
    }
    return [name for name, used in present.items() if used]


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _SUMMARY_MAX else line[: _SUMMARY_MAX - 1] + "…"
