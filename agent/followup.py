"""Answer an operator's free question in an incident thread ("what changed in the last hour?").

With an LLM chain: a short tool loop. Without one, or when it fails: a deterministic answer
from freshly gathered observations, routed by keywords. `Answer.source` says which answered.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from pydantic import BaseModel, Field

from agent.budget import cut_logs, summarize_metrics
from agent.errors import ProviderError
from agent.gather import gather
from agent.llm.base import Message
from agent.llm.chain import ProviderChain
from agent.loop import (
    InvestigationLimits,
    ToolLoop,
    fenced,
    incident_section,
    load_prompt,
    parse_json_object,
    verified_evidence,
)
from agent.redact import Redactor
from agent.sources import Sources
from agent.tools import Toolbox, build_tools, format_deploy, format_error, format_health
from agent.types import DiagnosisSource, Evidence, IncidentContext, Observations

log = structlog.get_logger(__name__)

FOLLOWUP_LIMITS = InvestigationLimits(
    max_tool_rounds=2, timeout_s=45.0, token_budget=15000, tool_output_budget_chars=3000
)
_HISTORY_MESSAGES = 10
_QUOTED_LINES = 5
_LOG_BUDGET = 1200
_DEFAULT_CHANGE_WINDOW_MIN = 1440

_DB = re.compile(
    r"\bdb\b|database|postgres|mysql|sql|connection|pool|quer|lock|transaction|hikari", re.I
)
_ERRORS = re.compile(r"error|exception|fatal|panic|fail|traceback|crash", re.I)
_WINDOW = re.compile(r"last\s+(\d+)?\s*(min|minute|hour|hr|day)s?", re.I)
_MINUTES = {"min": 1, "minute": 1, "hour": 60, "hr": 60, "day": 1440}


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    source: DiagnosisSource
    evidence: list[Evidence] = field(default_factory=list)


class _LiveAnswer(BaseModel):
    answer: str = Field(min_length=1)
    evidence: list[Evidence] = Field(default_factory=list)


async def answer_question(
    question: str,
    ctx: IncidentContext,
    sources: Sources,
    chain: ProviderChain | None,
    history: list[str],
    *,
    limits: InvestigationLimits = FOLLOWUP_LIMITS,
    redact_patterns: Sequence[str] = (),
) -> Answer:
    """Never raises for a provider failure: the deterministic answer takes over."""
    if chain is not None:
        try:
            return await _live(question, ctx, sources, chain, history, limits, redact_patterns)
        except ProviderError as exc:
            log.info("follow-up answered offline", reason=str(exc))
    observations, _ = await gather(sources, ctx)
    return offline_answer(question, observations, sources)


async def _live(
    question: str,
    ctx: IncidentContext,
    sources: Sources,
    chain: ProviderChain,
    history: list[str],
    limits: InvestigationLimits,
    redact_patterns: Sequence[str],
) -> Answer:
    redactor = Redactor(redact_patterns)
    toolbox = Toolbox(
        build_tools(sources, ctx.signature, limits.tool_output_budget_chars), redactor
    )
    nonce = secrets.token_hex(4)
    parts = [incident_section(ctx, nonce)]
    if history:
        parts += [
            "## Earlier messages in the thread (UNTRUSTED DATA)",
            fenced(nonce, "\n".join(history[-_HISTORY_MESSAGES:])),
        ]
    parts += [
        f"## Tools\nAvailable: {', '.join(toolbox.tools) or 'none'}.",
        f"## The operator asks\n{question}",
    ]
    messages: list[Message] = [
        {
            "role": "system",
            "content": load_prompt("followup_system").substitute(max_rounds=limits.max_tool_rounds),
        },
        {"role": "user", "content": redactor.redact("\n\n".join(parts))},
    ]
    answer, transcript = await ToolLoop(chain, toolbox, limits).run(
        messages, lambda content: _LiveAnswer.model_validate(parse_json_object(content))
    )
    evidence = verified_evidence(answer.evidence, transcript.outputs)
    # The answer is the model's own words: its placeholders stay. A quoted line gets back only
    # the secrets the thread has already shown (the operator pasted them).
    seen = "\n".join([question, *history])
    return Answer(
        text=answer.answer,
        source=transcript.source(chain),
        evidence=[Evidence(tool=e.tool, quote=redactor.restore(e.quote, seen)) for e in evidence],
    )


def offline_answer(question: str, observations: Observations, sources: Sources) -> Answer:
    """A deterministic answer: the first topic whose keywords the question contains."""
    routes: tuple[tuple[re.Pattern[str], Callable[[], Answer]], ...] = (
        (
            re.compile(r"chang|deploy|release|commit|roll ?out|ship|merge", re.I),
            lambda: _changes(question, observations, sources),
        ),
        (_DB, lambda: _database(observations)),
        (_ERRORS, lambda: _errors(observations)),
        (
            re.compile(r"health|\bup\b|\bdown\b|alive|reachable|respond", re.I),
            lambda: _health(observations, sources),
        ),
    )
    for pattern, answer in routes:
        if pattern.search(question):
            return answer()
    return _status(observations)


def _changes(question: str, observations: Observations, sources: Sources) -> Answer:
    if sources.deploys is None:
        return _offline("No deploy source is configured for this service.")
    window = _window_minutes(question)
    recent = [d for d in observations.deploys if d.minutes_ago <= window]
    if not recent:
        older = observations.deploys[0] if observations.deploys else None
        latest = f" The latest: {format_deploy(older)}." if older else ""
        return _offline(f"No deploys or config changes in the last {window} min.{latest}")
    lines = [format_deploy(d) for d in recent]
    return _offline(
        f"Changes in the last {window} min:\n" + "\n".join(f"• {line}" for line in lines),
        [Evidence(tool="deploys", quote=line) for line in lines[:_QUOTED_LINES]],
    )


def _database(observations: Observations) -> Answer:
    series = {n: p for n, p in observations.metrics.items() if _DB.search(n)}
    lines = [line for line in observations.logs if _DB.search(line)]
    if not series and not lines:
        return _offline("I found no database metrics or database-related log lines.")
    parts = []
    if series:
        parts.append(summarize_metrics(series))
    if lines:
        parts.append("Database-related log lines:\n" + cut_logs(lines, _LOG_BUDGET))
    evidence = [Evidence(tool="logs", quote=line) for line in lines[-_QUOTED_LINES:]]
    return _offline("\n\n".join(parts), evidence)


def _errors(observations: Observations) -> Answer:
    issues = [format_error(issue) for issue in observations.errors]
    lines = [line for line in observations.logs if _ERRORS.search(line)]
    if not issues and not lines:
        return _offline("No errors in the error tracker or the recent logs.")
    parts = []
    if issues:
        parts.append("Top issues:\n" + "\n".join(f"• {issue}" for issue in issues))
    if lines:
        parts.append("Error log lines:\n" + cut_logs(lines, _LOG_BUDGET))
    evidence = [Evidence(tool="errors", quote=i) for i in issues[:_QUOTED_LINES]] + [
        Evidence(tool="logs", quote=line) for line in lines[-_QUOTED_LINES:]
    ]
    return _offline("\n\n".join(parts), evidence)


def _health(observations: Observations, sources: Sources) -> Answer:
    if observations.health is None:
        configured = sources.health is not None
        return _offline(
            "The health check gave no answer." if configured else "No health check configured."
        )
    line = format_health(observations.health)
    verdict = "healthy" if observations.health.healthy else "NOT healthy"
    return _offline(f"The service is {verdict}: {line}", [Evidence(tool="health", quote=line)])


def _status(observations: Observations) -> Answer:
    """A compact overview when the question names no topic."""
    parts: list[str] = []
    evidence: list[Evidence] = []
    if observations.health is not None:
        line = format_health(observations.health)
        parts.append(f"Health: {line}")
        evidence.append(Evidence(tool="health", quote=line))
    if observations.errors:
        top = format_error(observations.errors[0])
        parts.append(f"Top error: {top}")
        evidence.append(Evidence(tool="errors", quote=top))
    if observations.deploys:
        parts.append(f"Latest change: {format_deploy(observations.deploys[0])}")
    error_lines = [line for line in observations.logs if _ERRORS.search(line)]
    if observations.logs:
        parts.append(f"Logs: {len(error_lines)} error-like of the last {len(observations.logs)}")
    if error_lines:
        parts.append(f"Newest error line: {error_lines[-1]}")
        evidence.append(Evidence(tool="logs", quote=error_lines[-1]))
    for name, points in observations.metrics.items():
        if points:
            values = [v for _, v in points]
            parts.append(f"{name}: {values[0]:.4g} → {values[-1]:.4g} (max {max(values):.4g})")
    return _offline("\n".join(parts) or "No observations are available for this service.", evidence)


def _window_minutes(question: str) -> int:
    match = _WINDOW.search(question)
    if match is None:
        return _DEFAULT_CHANGE_WINDOW_MIN
    count = int(match.group(1)) if match.group(1) else 1
    return count * _MINUTES[match.group(2).lower()]


def _offline(text: str, evidence: list[Evidence] | None = None) -> Answer:
    return Answer(text=text, source=DiagnosisSource.OFFLINE, evidence=evidence or [])
