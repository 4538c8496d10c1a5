"""The investigation's tools over `Sources`: name, description, JSON schema, output budget.

`Toolbox.run` parses the model's arguments, calls the source, redacts the output and cuts it to
the tool's budget; every failure is answered as an error *result* the model can read (holmes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent.budget import cut_logs, cut_text, summarize_metrics
from agent.redact import Redactor
from agent.sources import Sources
from agent.types import PastFix
from integrations.errors import IntegrationError
from integrations.observability.model import Deploy, ErrorIssue, HealthResult

DEFAULT_LOG_LINES = 200
MAX_LOG_LINES = 2000
DEFAULT_WINDOW_MINUTES = 60
MAX_WINDOW_MINUTES = 1440
DEFAULT_DEPLOY_MINUTES = 1440
MAX_DEPLOY_MINUTES = 7 * 1440
ERROR_ISSUES = 10
_METRIC_POINTS = 360  # step is chosen so a window returns about this many points


class ToolStatus(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    NO_DATA = "no_data"


@dataclass(frozen=True, slots=True)
class ToolResult:
    status: ToolStatus
    data: str

    def message_text(self) -> str:
        """What the model reads in the `role: tool` message."""
        if self.status is ToolStatus.SUCCESS:
            return self.data
        return f"[{self.status.value}] {self.data}"


Arguments = Mapping[str, Any]
Fetch = Callable[[Arguments], Awaitable[list[str]]]
"""Returns output lines, oldest first; an empty list means the source had nothing."""


def _join_and_cut(lines: Sequence[str], budget_chars: int) -> str:
    return cut_text("\n".join(lines), budget_chars)


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    budget_chars: int
    fetch: Fetch
    cut: Callable[[Sequence[str], int], str] = _join_and_cut

    def openai_format(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class _BadArguments(ValueError):
    """The model's tool arguments did not match the schema."""


class Toolbox:
    """The tools of one investigation; every output passes the redactor, then the budget."""

    def __init__(self, tools: Sequence[Tool], redactor: Redactor) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self._redactor = redactor

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.openai_format() for tool in self.tools.values()]

    async def run(self, name: str, arguments: str) -> ToolResult:
        tool = self.tools.get(name)
        if tool is None:
            return ToolResult(
                ToolStatus.ERROR, f"unknown tool {name!r}; available: {', '.join(self.tools)}"
            )
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise _BadArguments("arguments must be a JSON object")
            lines = await tool.fetch(args)
        except (json.JSONDecodeError, _BadArguments) as exc:
            return ToolResult(ToolStatus.ERROR, f"bad arguments for {name}: {exc}")
        except IntegrationError as exc:
            reason = self._redactor.redact(str(exc) or type(exc).__name__)
            return ToolResult(ToolStatus.ERROR, f"{name} source failed: {reason}")
        if not lines:
            return ToolResult(ToolStatus.NO_DATA, f"{name}: nothing found")
        redacted = [self._redactor.redact(line) for line in lines]
        return ToolResult(ToolStatus.SUCCESS, tool.cut(redacted, tool.budget_chars))


def build_tools(sources: Sources, signature: str, budget_chars: int) -> list[Tool]:
    """One tool per source that exists; `signature` identifies the alert for past incidents."""
    tools: list[Tool] = []
    if (logs := sources.logs) is not None:

        async def fetch_logs(args: Arguments) -> list[str]:
            return _grepped(
                await logs.tail(_int(args, "lines", DEFAULT_LOG_LINES, 1, MAX_LOG_LINES)), args
            )

        tools.append(
            Tool(
                name="logs",
                description="The service's newest log lines, oldest first. Use grep to "
                "search for a pattern (case-insensitive regex) instead of reading everything.",
                parameters=_object(
                    lines=_integer("how many of the newest lines to read", MAX_LOG_LINES),
                    grep={"type": "string", "description": "only lines matching this regex"},
                ),
                budget_chars=budget_chars,
                fetch=fetch_logs,
                cut=cut_logs,
            )
        )
    if (metrics := sources.metrics) is not None:

        async def fetch_metrics(args: Arguments) -> list[str]:
            window_s = 60 * _int(
                args, "window_minutes", DEFAULT_WINDOW_MINUTES, 1, MAX_WINDOW_MINUTES
            )
            series = await metrics.series(window_s, max(15, window_s // _METRIC_POINTS))
            names = _names(args)
            if names:
                unknown = [n for n in names if n not in series]
                if unknown and len(unknown) == len(names):
                    raise _BadArguments(f"no metric {unknown}; available: {sorted(series)}")
                series = {n: points for n, points in series.items() if n in names}
            return summarize_metrics(series).splitlines() if series else []

        tools.append(
            Tool(
                name="metrics",
                description="Summaries of the service's metrics (first/min/max/last, baseline "
                "vs recent, coarse shape) over a window.",
                parameters=_object(
                    names={
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "metric names to show (default: all)",
                    },
                    window_minutes=_integer("how far back to look", MAX_WINDOW_MINUTES),
                ),
                budget_chars=budget_chars,
                fetch=fetch_metrics,
            )
        )
    if (deploys := sources.deploys) is not None:

        async def fetch_deploys(args: Arguments) -> list[str]:
            since = _int(args, "since_minutes", DEFAULT_DEPLOY_MINUTES, 1, MAX_DEPLOY_MINUTES)
            return [format_deploy(d) for d in await deploys.recent(since)]

        tools.append(
            Tool(
                name="deploys",
                description="Recent deploys, merged pull requests, commits and config "
                "changes, newest first.",
                parameters=_object(since_minutes=_integer("how far back", MAX_DEPLOY_MINUTES)),
                budget_chars=budget_chars,
                fetch=fetch_deploys,
            )
        )
    if (errors := sources.errors) is not None:

        async def fetch_errors(args: Arguments) -> list[str]:
            return [format_error(issue) for issue in await errors.top_issues(ERROR_ISSUES)]

        tools.append(
            Tool(
                name="errors",
                description="The error tracker's most frequent recent issues with counts.",
                parameters=_object(),
                budget_chars=budget_chars,
                fetch=fetch_errors,
            )
        )
    if (health := sources.health) is not None:

        async def fetch_health(args: Arguments) -> list[str]:
            return [format_health(await health.check())]

        tools.append(
            Tool(
                name="health",
                description="Probe the service's health endpoint now.",
                parameters=_object(),
                budget_chars=budget_chars,
                fetch=fetch_health,
            )
        )
    if (kubernetes := sources.kubernetes) is not None:

        async def fetch_kubernetes(args: Arguments) -> list[str]:
            return _grepped(await kubernetes.state(), args)

        tools.append(
            Tool(
                name="kubernetes",
                description="The workload in Kubernetes as kubectl describe shows it: pod "
                "phase, container states with reasons (OOMKilled, CrashLoopBackOff, "
                "ImagePullBackOff) and exit codes, restart counts, limits, events, previous "
                "container logs, Job status and rollout history (earlier revisions). Use grep "
                "to keep only matching lines.",
                parameters=_object(
                    grep={"type": "string", "description": "only lines matching this regex"}
                ),
                budget_chars=budget_chars,
                fetch=fetch_kubernetes,
                cut=cut_logs,
            )
        )
    if (past := sources.past) is not None:

        async def fetch_past(args: Arguments) -> list[str]:
            return [format_fix(fix) for fix in await past.fixes_for(signature)]

        tools.append(
            Tool(
                name="past_incidents",
                description="What resolved earlier incidents with the same alert.",
                parameters=_object(),
                budget_chars=budget_chars,
                fetch=fetch_past,
            )
        )
    return tools


def format_deploy(deploy: Deploy) -> str:
    message = deploy.message.splitlines()[0] if deploy.message else ""
    return (
        f"{deploy.minutes_ago:.0f}m ago  {deploy.kind} {deploy.sha[:12]}  "
        f"{message!r} by {deploy.author}"
    )


def format_error(issue: ErrorIssue) -> str:
    seen = (
        f"  (first seen {issue.first_seen_minutes_ago:.0f}m ago)"
        if issue.first_seen_minutes_ago is not None
        else ""
    )
    return f"{issue.count}×  {issue.title}{seen}"


def format_health(result: HealthResult) -> str:
    if result.status is None:
        return f"unreachable: {result.body}"
    latency = f" in {result.latency_ms:.0f}ms" if result.latency_ms is not None else ""
    return f"HTTP {result.status}{latency}: {result.body}"


def format_fix(fix: PastFix) -> str:
    return f"{fix.action} resolved {fix.times} of {fix.of} earlier incidents with this alert"


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _integer(description: str, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": maximum, "description": description}


def _int(args: Arguments, key: str, default: int, low: int, high: int) -> int:
    value = args.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _BadArguments(f"{key} must be an integer")
    try:
        number = int(value)
    except ValueError as exc:
        raise _BadArguments(f"{key} must be an integer") from exc
    return min(max(number, low), high)


def _grepped(lines: list[str], args: Arguments) -> list[str]:
    """The lines matching the `grep` argument, or all of them."""
    pattern = _pattern(args)
    return [line for line in lines if pattern.search(line)] if pattern else lines


def _pattern(args: Arguments) -> re.Pattern[str] | None:
    grep = args.get("grep")
    if not grep:
        return None
    if not isinstance(grep, str):
        raise _BadArguments("grep must be a string")
    try:
        return re.compile(grep, re.I)
    except re.error:
        return re.compile(re.escape(grep), re.I)


def _names(args: Arguments) -> list[str]:
    names = args.get("names") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _BadArguments("names must be a list of metric names")
    return names
