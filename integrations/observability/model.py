"""What observability sources return, and the small protocols each kind of source implements.

Every source is async and raises `integrations.errors.IntegrationError` subclasses on failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

Point = tuple[float, float]
"""(unix seconds, value)"""


@dataclass(frozen=True, slots=True)
class Deploy:
    sha: str
    message: str
    author: str
    minutes_ago: float
    kind: str = "commit"  # commit | pull_request | deployment | config


@dataclass(frozen=True, slots=True)
class ErrorIssue:
    title: str
    count: int
    first_seen_minutes_ago: float | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class HealthResult:
    status: int | None  # HTTP status, None when unreachable
    body: str
    latency_ms: float | None = None

    @property
    def healthy(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class LogSource(Protocol):
    async def tail(self, limit: int) -> list[str]:
        """The newest `limit` log lines, oldest first."""
        ...


class MetricsSource(Protocol):
    async def series(self, window_s: int, step_s: int) -> dict[str, list[Point]]:
        """Each configured metric over the last `window_s` seconds."""
        ...


class DeploySource(Protocol):
    async def recent(self, since_minutes: int) -> list[Deploy]:
        """Deploys, merged PRs and commits in the window, newest first."""
        ...


class ErrorSource(Protocol):
    async def top_issues(self, limit: int) -> list[ErrorIssue]:
        """The error tracker's most frequent recent issues."""
        ...


class HealthSource(Protocol):
    async def check(self) -> HealthResult:
        """One health probe; never raises for an unhealthy answer."""
        ...


class WorkloadSource(Protocol):
    async def state(self) -> list[str]:
        """The workload's state (pods, containers, events, rollout or Job status) as lines."""
        ...
