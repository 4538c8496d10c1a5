"""Types the agent produces and consumes: Diagnosis, Intent, and the evidence it reasons over."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import Alert
from integrations.observability.model import Deploy, ErrorIssue, HealthResult, Point


class Category(StrEnum):
    MEMORY_LEAK = "memory_leak"
    CPU_SATURATION = "cpu_saturation"
    TRAFFIC_SPIKE = "traffic_spike"
    BAD_DEPLOY = "bad_deploy"
    DB_LATENCY = "db_latency"
    DB_CONNECTION_EXHAUSTION = "db_connection_exhaustion"
    DEPENDENCY_DOWN = "dependency_down"
    DISK_FULL = "disk_full"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CRASH_LOOP = "crash_loop"
    UNKNOWN = "unknown"


class ActionKind(StrEnum):
    RESTART = "restart"
    SCALE_UP = "scale_up"
    ROLLBACK = "rollback"
    NONE = "none"


class DiagnosisSource(StrEnum):
    LIVE = "live"
    FALLBACK = "fallback"
    CACHE = "cache"
    OFFLINE = "offline"
    STATIC = "static"


class Evidence(BaseModel):
    tool: str
    quote: str


class ProposedAction(BaseModel):
    action: ActionKind
    service: str | None = None
    replicas: int | None = None


class TokenUsage(BaseModel):
    prompt: int = 0
    completion: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt=self.prompt + other.prompt, completion=self.completion + other.completion
        )

    def __sub__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt=self.prompt - other.prompt, completion=self.completion - other.completion
        )


class Diagnosis(BaseModel):
    """The agent's answer about an incident (CONTRACT.md)."""

    model_config = ConfigDict(use_enum_values=False)

    summary: str
    root_cause: str
    category: Category
    evidence: list[Evidence] = Field(default_factory=list)
    checks: list[str] = Field(default_factory=list)
    mitigation: str = ""
    proposed_action: ProposedAction | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    source: DiagnosisSource = DiagnosisSource.OFFLINE
    model: str | None = None
    tool_calls: list[str] = Field(default_factory=list)
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    latency_ms: int = 0
    cache_age_s: int | None = None
    past_fixes: str | None = None  # "last time, restart fixed it (2 of 2 times)"

    @property
    def action(self) -> ActionKind:
        return self.proposed_action.action if self.proposed_action else ActionKind.NONE


@dataclass(frozen=True, slots=True)
class PastFix:
    """What resolved earlier incidents with the same signature."""

    action: str
    times: int
    of: int


@dataclass(slots=True)
class Observations:
    """Everything the tools returned for one investigation (each may be empty)."""

    logs: list[str] = field(default_factory=list)
    kubernetes: list[str] = field(default_factory=list)  # pod/job/workload state and events
    metrics: dict[str, list[Point]] = field(default_factory=dict)
    deploys: list[Deploy] = field(default_factory=list)
    errors: list[ErrorIssue] = field(default_factory=list)
    health: HealthResult | None = None
    past_fixes: list[PastFix] = field(default_factory=list)


@dataclass(slots=True)
class IncidentContext:
    """What the agent knows about the incident before it calls any tool."""

    title: str
    alerts: list[Alert]
    service: str | None
    allowed_actions: list[ActionKind] = field(default_factory=list)
    runbook: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def signature(self) -> str:
        return self.alerts[0].signature if self.alerts else f"{self.title}|{self.service or ''}"


class IntentKind(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    DIAGNOSE = "diagnose"
    QUESTION = "question"
    ACTION = "action"
    TICKET = "ticket"
    SNOOZE = "snooze"
    STATUS = "status"
    ONCALL = "oncall"
    HELP = "help"
    APPROVE = "approve"
    DENY = "deny"
    CHAOS = "chaos"
    STATS = "stats"
    LIST = "list"
    UNKNOWN = "unknown"


class Intent(BaseModel):
    """What an operator asked for, with its arguments; `service` None means 'this incident'."""

    kind: IntentKind
    action: ActionKind | None = None
    service: str | None = None
    replicas: int | None = None  # absolute target ("scale it to 6")
    delta: int | None = None  # relative ("add 2 replicas")
    assignee: str | None = None
    priority: str | None = None
    duration_s: int | None = None
    enabled: bool | None = None  # chaos on/off
    incident_ref: str | None = None  # "#42" named in the text
    text: str = ""
    source: str = "grammar"  # grammar | llm
