"""Replay scenario files (shared/scenarios/FORMAT.md) through a diagnosis pipeline and score
category, action and evidence against what a senior SRE expected."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from agent import offline
from agent.errors import AgentError
from agent.gather import gather
from agent.pipeline import DiagnosisPipeline, PipelineResult
from agent.sources import Sources
from agent.types import ActionKind, Category, Diagnosis, IncidentContext
from integrations.alerts import Alert, alertmanager, generic, sns
from integrations.errors import PayloadError
from integrations.observability.model import Deploy, ErrorIssue, HealthResult, Point

Pipeline = Callable[[IncidentContext, Sources], Awaitable[Diagnosis | PipelineResult]]
EVAL_ACTIONS = [ActionKind.RESTART, ActionKind.SCALE_UP, ActionKind.ROLLBACK]


class ScenarioError(AgentError):
    """A scenario file is missing, not JSON, or does not follow FORMAT.md."""


class ScenarioDeploy(BaseModel):
    sha: str
    message: str
    author: str
    minutes_ago: float


class ScenarioIssue(BaseModel):
    title: str
    count: int
    first_seen_minutes_ago: float | None = None


class ScenarioHealth(BaseModel):
    status: int | None = None
    body: str = ""


class ScenarioObservations(BaseModel):
    logs: list[str] = Field(default_factory=list)
    metrics: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)
    deploys: list[ScenarioDeploy] = Field(default_factory=list)
    errors: list[ScenarioIssue] = Field(default_factory=list)
    health: ScenarioHealth | None = None


class Expectation(BaseModel):
    category: Category
    action: ActionKind
    evidence_keywords: list[str] = Field(default_factory=list)


class Scenario(BaseModel):
    id: str
    title: str
    source: Literal["alertmanager", "sns", "generic"]
    payload: dict[str, object]
    observations: ScenarioObservations = Field(default_factory=ScenarioObservations)
    expect: Expectation


class ScenarioResult(BaseModel):
    id: str
    category: str
    action: str
    category_ok: bool
    action_ok: bool
    expected_category: str
    expected_action: str
    evidence_recall: float
    missing_keywords: list[str]
    confidence: float
    source: str
    latency_ms: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # why a layer did not answer ("llm: answer set aside (...)"), when the pipeline says
    notes: list[str] = Field(default_factory=list)


class EvalReport(BaseModel):
    scenarios: int
    category_accuracy: float
    action_accuracy: float
    evidence_recall: float
    latency_ms_p50: float
    latency_ms_max: float
    prompt_tokens: int
    completion_tokens: int
    # how many answers came from each source (live LLM, offline fallback, ...)
    sources: dict[str, int]
    results: list[ScenarioResult]


def load_scenario(path: Path) -> Scenario:
    try:
        return Scenario.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


_PARSERS: dict[str, Callable[[object], list[Alert]]] = {
    "alertmanager": alertmanager.parse,
    "sns": sns.parse,
    "generic": generic.parse,
}


def scenario_context(s: Scenario) -> IncidentContext:
    """The incident as the bot would know it from the scenario's webhook payload."""
    alerts = _PARSERS[s.source](s.payload)
    first = alerts[0] if alerts else None
    return IncidentContext(
        title=first.title if first else s.title,
        alerts=alerts,
        service=first.service if first else None,
        allowed_actions=list(EVAL_ACTIONS),
        labels=dict(first.labels) if first else {},
        annotations=dict(first.annotations) if first else {},
    )


@dataclass(frozen=True, slots=True)
class _Logs:
    lines: list[str]

    async def tail(self, limit: int) -> list[str]:
        return self.lines[-limit:] if limit > 0 else []


@dataclass(frozen=True, slots=True)
class _Metrics:
    series_by_name: dict[str, list[Point]]

    async def series(self, window_s: int, step_s: int) -> dict[str, list[Point]]:
        return dict(self.series_by_name)  # a recorded snapshot: the window is what was recorded


@dataclass(frozen=True, slots=True)
class _Deploys:
    deploys: list[Deploy]

    async def recent(self, since_minutes: int) -> list[Deploy]:
        return [d for d in self.deploys if d.minutes_ago <= since_minutes]


@dataclass(frozen=True, slots=True)
class _Errors:
    issues: list[ErrorIssue]

    async def top_issues(self, limit: int) -> list[ErrorIssue]:
        return self.issues[:limit]


@dataclass(frozen=True, slots=True)
class _Health:
    result: HealthResult

    async def check(self) -> HealthResult:
        return self.result


def scenario_sources(s: Scenario) -> Sources:
    """Sources that answer from the scenario's recorded observations (absent ones stay None)."""
    o = s.observations
    return Sources(
        logs=_Logs(list(o.logs)) if o.logs else None,
        metrics=_Metrics({n: list(p) for n, p in o.metrics.items()}) if o.metrics else None,
        deploys=_Deploys([Deploy(**d.model_dump()) for d in o.deploys]) if o.deploys else None,
        errors=_Errors([ErrorIssue(**e.model_dump()) for e in o.errors]) if o.errors else None,
        health=_Health(HealthResult(o.health.status, o.health.body)) if o.health else None,
    )


async def offline_pipeline(ctx: IncidentContext, sources: Sources) -> Diagnosis:
    """Gather, then the offline rules: the embedded default's whole diagnosis."""
    started = time.perf_counter()
    obs, _ = await gather(sources, ctx)
    diagnosis = offline.diagnose(ctx, obs)
    return diagnosis.model_copy(update={"latency_ms": _ms_since(started)})


def llm_pipeline(pipeline: DiagnosisPipeline) -> Pipeline:
    """The configured pipeline, reporting every token its model spent on a scenario (an answer
    set aside for the offline one included) and why a layer did not answer."""

    async def diagnose(ctx: IncidentContext, sources: Sources) -> PipelineResult:
        chain = pipeline.chain
        before = chain.usage if chain else None
        result = await pipeline.run(ctx, sources)
        if chain is not None and before is not None:
            spent = chain.usage - before
            result.diagnosis = result.diagnosis.model_copy(update={"tokens": spent})
        return result

    return diagnose


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def evidence_recall(diagnosis: Diagnosis, keywords: list[str]) -> tuple[float, list[str]]:
    """Share of expected keywords the diagnosis cites (evidence, summary, root cause)."""
    text = "\n".join(
        [diagnosis.summary, diagnosis.root_cause, *(e.quote for e in diagnosis.evidence)]
    ).lower()
    missing = [k for k in keywords if k.lower() not in text]
    return (1 - len(missing) / len(keywords) if keywords else 1.0), missing


def _scenario_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json"))


async def _score(path: Path, diagnose: Pipeline) -> ScenarioResult:
    s = await asyncio.to_thread(load_scenario, path)
    try:
        ctx = scenario_context(s)
    except PayloadError as exc:
        raise ScenarioError(f"{path}: payload: {exc}") from exc
    started = time.perf_counter()
    answer = await diagnose(ctx, scenario_sources(s))
    latency = _ms_since(started)
    d, notes = (
        (answer.diagnosis, answer.notes) if isinstance(answer, PipelineResult) else (answer, [])
    )
    recall, missing = evidence_recall(d, s.expect.evidence_keywords)
    return ScenarioResult(
        id=s.id,
        category=d.category.value,
        action=d.action.value,
        category_ok=d.category == s.expect.category,
        action_ok=d.action == s.expect.action,
        expected_category=s.expect.category.value,
        expected_action=s.expect.action.value,
        evidence_recall=round(recall, 3),
        missing_keywords=missing,
        confidence=d.confidence,
        source=d.source.value,
        latency_ms=latency,
        prompt_tokens=d.tokens.prompt,
        completion_tokens=d.tokens.completion,
        notes=notes,
    )


async def run_eval(directory: Path, diagnose: Pipeline = offline_pipeline) -> EvalReport:
    """Score every `*.json` scenario in `directory`, in file-name order."""
    paths = await asyncio.to_thread(_scenario_paths, Path(directory))
    if not paths:
        raise ScenarioError(f"{directory}: no *.json scenario files")
    results = [await _score(p, diagnose) for p in paths]
    n = len(results)
    return EvalReport(
        scenarios=n,
        category_accuracy=round(sum(r.category_ok for r in results) / n, 3),
        action_accuracy=round(sum(r.action_ok for r in results) / n, 3),
        evidence_recall=round(statistics.fmean(r.evidence_recall for r in results), 3),
        latency_ms_p50=statistics.median(r.latency_ms for r in results),
        latency_ms_max=max(r.latency_ms for r in results),
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        sources=dict(Counter(r.source for r in results)),
        results=results,
    )


def format_report(report: EvalReport) -> str:
    """A table a person can read: one row per scenario, then the totals."""
    rows = [("scenario", "category", "action", "recall", "conf", "source", "ms", "tokens")]
    for r in report.results:
        category = r.category if r.category_ok else f"{r.category} (want {r.expected_category})"
        action = r.action if r.action_ok else f"{r.action} (want {r.expected_action})"
        rows.append(
            (
                r.id,
                category,
                action,
                f"{r.evidence_recall:.2f}",
                f"{r.confidence:.2f}",
                r.source,
                str(r.latency_ms),
                f"{r.prompt_tokens}+{r.completion_tokens}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(
        f"{report.scenarios} scenarios: category {report.category_accuracy:.0%}, "
        f"action {report.action_accuracy:.0%}, evidence recall {report.evidence_recall:.0%}, "
        f"p50 {report.latency_ms_p50:g} ms, max {report.latency_ms_max:g} ms, "
        f"tokens {report.prompt_tokens} prompt + {report.completion_tokens} completion"
    )
    lines.append("  answers by source: " + ", ".join(f"{k} {v}" for k, v in report.sources.items()))
    missing = [(r.id, r.missing_keywords) for r in report.results if r.missing_keywords]
    lines.extend(f"  {sid}: missing {', '.join(k)}" for sid, k in missing)
    return "\n".join(lines)
