"""The diagnosis layers, in order: live LLM → fallback LLM → cache → offline rules → static.

`DiagnosisPipeline.diagnose` never raises: each layer's failure is noted and the next answers;
the `Diagnosis.source` says which one did.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from agent.errors import ProviderError
from agent.gather import gather
from agent.llm.chain import ProviderChain
from agent.loop import InvestigationLimits, Investigator
from agent.offline import diagnose as offline_diagnose
from agent.sources import DiagnosisCache, Sources
from agent.types import (
    ActionKind,
    Category,
    Diagnosis,
    DiagnosisSource,
    IncidentContext,
    Observations,
    ProposedAction,
)
from agent.verdict import reconcile

log = structlog.get_logger(__name__)
T = TypeVar("T")

GENERIC_CHECKLIST = (
    "Check the service's health endpoint and whether it is reachable at all.",
    "Look at deploys and config changes in the last hours; roll back if one lines up.",
    "Read the newest error logs and the error tracker's top issues.",
    "Compare error rate, latency, CPU, memory and disk with their usual values.",
    "Check the dependencies: database, caches, queues and upstream APIs.",
    "Escalate to the service owner if nothing above explains it.",
)
_MAX_CHECKS = 12


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    cache_ttl_s: int = 86400
    log_lines: int = 200
    window_s: int = 3600
    step_s: int = 60
    deploy_minutes: int = 1440
    limits: InvestigationLimits = field(default_factory=InvestigationLimits)
    redact_patterns: tuple[str, ...] = ()


@dataclass(slots=True)
class PipelineResult:
    diagnosis: Diagnosis
    notes: list[str] = field(default_factory=list)
    """Why earlier layers did not answer, and which sources failed ("llm: ...", "logs: ...")."""


class DiagnosisPipeline:
    def __init__(
        self,
        chain: ProviderChain | None,
        cache: DiagnosisCache | None,
        settings: PipelineSettings = PipelineSettings(),
    ) -> None:
        self.chain = chain
        self._cache = cache
        self._settings = settings
        self._investigator = (
            Investigator(chain, settings.limits, settings.redact_patterns) if chain else None
        )

    async def diagnose(self, ctx: IncidentContext, sources: Sources) -> Diagnosis:
        return (await self.run(ctx, sources)).diagnosis

    async def run(self, ctx: IncidentContext, sources: Sources) -> PipelineResult:
        """The first layer that answers, with notes on the ones that did not; never raises."""
        started = time.perf_counter()
        notes: list[str] = []
        diagnosis = await self._layers(ctx, sources, notes)
        if diagnosis.source is not DiagnosisSource.LIVE:
            log.info("diagnosis degraded", source=diagnosis.source.value, notes=notes)
        latency_ms = round((time.perf_counter() - started) * 1000)
        return PipelineResult(diagnosis.model_copy(update={"latency_ms": latency_ms}), notes)

    async def _layers(self, ctx: IncidentContext, sources: Sources, notes: list[str]) -> Diagnosis:
        s = self._settings
        gathered = await _guarded(
            "gather",
            lambda: gather(
                sources,
                ctx,
                log_lines=s.log_lines,
                window_s=s.window_s,
                step_s=s.step_s,
                deploy_minutes=s.deploy_minutes,
            ),
            notes,
        )
        observations, source_notes = gathered or (Observations(), [])
        notes.extend(source_notes)
        findings = await _guarded("offline", lambda: _offline(ctx, observations), notes)
        if self._investigator is not None:
            investigator = self._investigator
            live = await _guarded(
                "llm", lambda: investigator.investigate(ctx, sources, findings), notes
            )
            verdict = reconcile(live, findings) if live is not None else None
            if verdict is not None and verdict.rejected is not None:
                notes.append(f"llm: answer set aside ({verdict.rejected})")
            if verdict is not None:
                answer = verdict.diagnosis
                if (cache := self._cache) is not None and verdict.rejected is None:
                    await _guarded("cache", lambda: cache.put(ctx.signature, answer), notes)
                return answer
            cached = await _guarded("cache", lambda: self._cached(ctx), notes)
            if cached is not None:
                return cached
        if findings is not None:
            return findings.model_copy(update={"source": DiagnosisSource.OFFLINE})
        return static_diagnosis(ctx)

    async def _cached(self, ctx: IncidentContext) -> Diagnosis | None:
        if self._cache is None:
            return None
        hit = await self._cache.get(ctx.signature, self._settings.cache_ttl_s)
        if hit is None:
            return None
        diagnosis, age_s = hit
        return diagnosis.model_copy(update={"source": DiagnosisSource.CACHE, "cache_age_s": age_s})


def static_diagnosis(ctx: IncidentContext) -> Diagnosis:
    """The last layer: the runbook's steps (or a generic checklist) as a manual procedure."""
    steps = [line.strip(" \t-*•") for line in (ctx.runbook or "").splitlines()]
    checks = [step for step in steps if step] or list(GENERIC_CHECKLIST)
    return Diagnosis(
        summary=f"{ctx.title}: automatic diagnosis unavailable, follow the manual procedure",
        root_cause="Not determined: the live, cached and rule-based diagnoses all failed.",
        category=Category.UNKNOWN,
        checks=checks[:_MAX_CHECKS],
        mitigation="Work through the checks in order"
        + (" (from the service's runbook)." if ctx.runbook else "."),
        proposed_action=ProposedAction(action=ActionKind.NONE, service=ctx.service),
        confidence=0.0,
        source=DiagnosisSource.STATIC,
    )


async def _offline(ctx: IncidentContext, observations: Observations) -> Diagnosis:
    return offline_diagnose(ctx, observations)


async def _guarded(layer: str, work: Callable[[], Awaitable[T]], notes: list[str]) -> T | None:
    """The layer's result, or None with a note saying why it did not answer."""
    try:
        return await work()
    except ProviderError as exc:
        notes.append(f"{layer}: {exc}")
    except Exception as exc:
        # The pipeline's promise is an answer whatever broke: log the bug, use the next layer.
        log.exception("diagnosis layer failed", layer=layer)
        notes.append(f"{layer}: internal error ({type(exc).__name__}: {exc})")
    return None
