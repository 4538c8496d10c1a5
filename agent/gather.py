"""Gather the evidence for one investigation: every configured source at once, each bounded by
a timeout, with a note for each source that could not answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from agent.sources import Sources
from agent.types import IncidentContext, Observations
from integrations.errors import IntegrationError

DEFAULT_TIMEOUT_S = 10.0
TOP_ISSUES = 10


async def _bounded(name: str, call: Awaitable[Any], timeout_s: float) -> tuple[Any, str | None]:
    """(the source's answer, None) or (None, a note saying why it is missing)."""
    try:
        return await asyncio.wait_for(call, timeout_s), None
    except TimeoutError:
        return None, f"{name}: unavailable (no answer within {timeout_s:g}s)"
    except IntegrationError as exc:
        return None, f"{name}: unavailable ({exc or type(exc).__name__})"


async def gather(
    sources: Sources,
    ctx: IncidentContext,
    *,
    log_lines: int = 200,
    window_s: int = 3600,
    step_s: int = 60,
    deploy_minutes: int = 24 * 60,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[Observations, list[str]]:
    """Ask every present source concurrently; return what they said and a note per failure.

    The alert's own log excerpt comes first in `logs`, then the tail, without repeated lines.
    """
    calls: dict[str, Awaitable[Any]] = {}
    if sources.logs is not None:
        calls["logs"] = sources.logs.tail(log_lines)
    if sources.metrics is not None:
        calls["metrics"] = sources.metrics.series(window_s, step_s)
    if sources.deploys is not None:
        calls["deploys"] = sources.deploys.recent(deploy_minutes)
    if sources.errors is not None:
        calls["errors"] = sources.errors.top_issues(TOP_ISSUES)
    if sources.health is not None:
        calls["health"] = sources.health.check()
    if sources.kubernetes is not None:
        calls["kubernetes"] = sources.kubernetes.state()
    if sources.past is not None:
        calls["past incidents"] = sources.past.fixes_for(ctx.signature)
    answers = await asyncio.gather(*(_bounded(n, c, timeout_s) for n, c in calls.items()))
    got = {name: value for name, (value, _) in zip(calls, answers, strict=True)}
    notes = [note for _, note in answers if note]

    tail: list[str] = list(got.get("logs") or [])
    in_tail = set(tail)
    carried = [line for alert in ctx.alerts for line in alert.logs if line not in in_tail]
    obs = Observations(
        logs=list(dict.fromkeys(carried)) + tail,
        kubernetes=list(got.get("kubernetes") or []),
        metrics=dict(got.get("metrics") or {}),
        deploys=list(got.get("deploys") or []),
        errors=list(got.get("errors") or []),
        health=got.get("health"),
        past_fixes=list(got.get("past incidents") or []),
    )
    return obs, notes
