"""The sources an investigation may consult for one service; any may be absent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.types import Diagnosis, PastFix
from integrations.observability.model import (
    DeploySource,
    ErrorSource,
    HealthSource,
    LogSource,
    MetricsSource,
    WorkloadSource,
)


class PastIncidentSource(Protocol):
    async def fixes_for(self, signature: str) -> list[PastFix]:
        """What resolved earlier incidents with this alert signature, most frequent first."""
        ...


class DiagnosisCache(Protocol):
    async def get(self, signature: str, max_age_s: int) -> tuple[Diagnosis, int] | None:
        """The last good diagnosis for this signature and its age in seconds."""
        ...

    async def put(self, signature: str, diagnosis: Diagnosis) -> None: ...


@dataclass(slots=True)
class Sources:
    logs: LogSource | None = None
    metrics: MetricsSource | None = None
    deploys: DeploySource | None = None
    errors: ErrorSource | None = None
    health: HealthSource | None = None
    kubernetes: WorkloadSource | None = None
    past: PastIncidentSource | None = None
