"""Configuration: one YAML file with ${ENV} interpolation, validated by pydantic.

Errors name the file, the key and the problem. With no file, the embedded default runs.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.app.passwords import check_hash_format
from integrations.alerts import SERVICE_LABELS, service_from_labels, severity
from integrations.alerts.mapping import CustomMapping, check_template
from integrations.alerts.normalize import RESOLVED_WORDS

DEFAULT_PATH = Path("config/opsbot.yaml")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class ConfigError(Exception):
    """A configuration problem; the message names the file and key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_json_depth: int = Field(default=32, ge=2, le=200)
    # Proxies (addresses or CIDRs) whose X-Forwarded-For names the client, as uvicorn's
    # --forwarded-allow-ips; only they may vouch for a console user by header.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from exc
        return v


class RetentionConfig(_Model):
    delivered_outbox_s: int = Field(default=86_400, ge=0)
    request_bodies_s: int = Field(default=7 * 86_400, ge=0)
    purge_every_s: int = Field(default=3600, gt=0)


class StorageConfig(_Model):
    url: str = "sqlite:///./opsbot.db"
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    migrate_on_start: bool = True  # false: only `opsbot migrate` changes the schema


class ClusterConfig(_Model):
    """Replicas sharing one PostgreSQL database (see docs/scaling.md)."""

    replica_id: str = ""  # default: host name and HTTP port; must differ between live replicas
    heartbeat_s: float = Field(default=2.0, gt=0)
    dead_after_s: float = Field(default=10.0, gt=0)  # no heartbeat this long: the replica is gone
    tick_s: float = Field(default=5.0, gt=0)  # how often the leader runs its scheduled steps


_MAPPING_TEMPLATES = (
    *("title", "status", "severity", "service", "dedup_key", "description", "url", "timestamp"),
)
_MAPPING_NAME = re.compile(r"[A-Za-z0-9_-]+")


class MappingConfig(_Model):
    """`webhooks.mappings.<name>`: Jinja2 templates over the body (`payload`), served at
    `/webhooks/custom/<name>`."""

    title: str
    status: str | None = None
    resolved_when: list[str] = Field(default_factory=lambda: sorted(RESOLVED_WORDS))
    severity: str | None = None
    service: str | None = None
    dedup_key: str | None = None
    description: str | None = None
    url: str | None = None
    timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator(*_MAPPING_TEMPLATES)
    @classmethod
    def _template_compiles(cls, v: str | None) -> str | None:
        return v if v is None else check_template(v)

    @field_validator("labels")
    @classmethod
    def _labels_compile(cls, v: dict[str, str]) -> dict[str, str]:
        for name, text in v.items():
            try:
                check_template(text)
            except ValueError as exc:
                raise ValueError(f"label {name!r}: {exc}") from None
        return v

    @field_validator("resolved_when", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


class WebhooksConfig(_Model):
    token: str = ""
    # A public bind without a token refuses to start unless this says it is intended.
    allow_unauthenticated: bool = False
    sns_topics: list[str] = Field(default_factory=list)
    reopen_window_s: int = 3600
    # Test-only escape hatch: PEM certificate(s) trusted for SNS in place of AWS hosts.
    sns_trusted_cert_file: str | None = None
    # Alert labels that name the service, first present wins (`pod` without its generated suffix).
    service_labels: list[str] = Field(default_factory=lambda: list(SERVICE_LABELS))
    mappings: dict[str, MappingConfig] = Field(default_factory=dict)
    _compiled: dict[str, CustomMapping] = PrivateAttr(default_factory=dict)

    @field_validator("mappings")
    @classmethod
    def _url_safe_names(cls, v: dict[str, MappingConfig]) -> dict[str, MappingConfig]:
        for name in v:
            if not _MAPPING_NAME.fullmatch(name):
                raise ValueError(f"mapping name {name!r} must be letters, digits, - or _")
        return v

    def mapping(self, name: str) -> CustomMapping | None:
        """The compiled `mappings.<name>` (compiled once), or None when there is none."""
        spec = self.mappings.get(name)
        if spec is None:
            return None
        if name not in self._compiled:
            templates = {field: getattr(spec, field) for field in _MAPPING_TEMPLATES}
            self._compiled[name] = CustomMapping(name, templates, spec.labels, spec.resolved_when)
        return self._compiled[name]


class AdminConfig(_Model):
    token: str = ""


class ProviderConfig(_Model):
    name: str
    base_url: str = "https://api.openai.com/v1"
    api_key: str = ""
    model: str = "gpt-4o-mini"
    timeout_s: float = 30.0
    json_mode: bool = True
    max_tokens: int | None = Field(default=2048, gt=0)


class LlmConfig(_Model):
    providers: list[ProviderConfig] = Field(default_factory=list)
    cache_ttl_s: int = 86400
    max_tool_rounds: int = 4
    tool_output_budget_chars: int = 6000
    investigation_timeout_s: float = 90.0
    investigation_token_budget: int = 40000
    breaker_failures: int = 3
    breaker_cooldown_s: float = 60.0
    redact_patterns: list[str] = Field(default_factory=list)

    @field_validator("redact_patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for i, pattern in enumerate(v):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {i} {pattern!r} is not a valid regex: {exc}") from exc
        return v


class SlackConfig(_Model):
    bot_token: str = ""
    signing_secret: str = ""
    app_token: str = ""
    api_url: str = "https://slack.com/api/"

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token)


class DiscordConfig(_Model):
    bot_token: str = ""
    application_id: str = ""
    public_key: str = ""
    guild_id: str = ""
    api_url: str = "https://discord.com/api/v10"
    gateway: bool = True  # hold the gateway session while this replica leads (false: REST only)

    @field_validator("public_key")
    @classmethod
    def _ed25519_hex(cls, v: str) -> str:
        if v and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise ValueError("the application's Public Key: 64 hexadecimal characters")
        return v

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token)


TemplateField = Literal["incident", "severity", "service", "title", "text"]
_TEMPLATE_FIELDS: dict[str, TemplateField] = {
    "1": "incident",
    "2": "severity",
    "3": "service",
    "4": "title",
}


class WhatsAppTemplateConfig(_Model):
    """An approved Content template, for messages outside WhatsApp's 24-hour window."""

    content_sid: str = ""  # HX...
    # template variable ("1", "2", ...) → what fills it: incident, severity, service, title, text
    variables: dict[str, TemplateField] = Field(default_factory=lambda: dict(_TEMPLATE_FIELDS))


class WhatsAppConfig(_Model):
    account_sid: str = ""
    auth_token: str = ""
    from_number: str = ""
    api_url: str = "https://api.twilio.com"
    template: WhatsAppTemplateConfig = Field(default_factory=WhatsAppTemplateConfig)
    session_window_s: int = 24 * 3600  # WhatsApp's customer-service window

    @property
    def enabled(self) -> bool:
        return bool(self.account_sid and self.auth_token)


class JiraConfig(_Model):
    url: str = ""
    username: str = ""
    api_token: str = ""
    project: str = "OPS"
    issue_type: str = "Task"
    deployment: Literal["cloud", "server"] = "cloud"

    @property
    def enabled(self) -> bool:
        return bool(self.url)


class ConsoleConfig(_Model):
    enabled: bool = True
    token: str = ""  # a shared login (no name attached); people[].console gives each their own
    session_ttl_s: int = Field(default=12 * 3600, gt=0)
    session_secret: str = ""  # signs session cookies; random per process when empty
    identity_header: str = ""  # e.g. X-Forwarded-User, believed only from http.trusted_proxies


def labels_match(match: dict[str, str], labels: dict[str, str]) -> bool:
    """Label equality (Alertmanager's matchers), except that `severity` compares levels: a
    route for `high` or `P1` takes critical incidents, and an incident stored when it said
    `high` or `page` still matches `critical`."""
    return all(
        labels.get(key) == wanted
        or (
            key == "severity"
            and (level := severity.known(wanted)) is not None
            and severity.known(labels.get(key)) is level
        )
        for key, wanted in match.items()
    )


class RouteConfig(_Model):
    match: dict[str, str] = Field(default_factory=dict)
    slack: list[str] = Field(default_factory=list)
    discord: list[str] = Field(default_factory=list)
    whatsapp: list[str] = Field(default_factory=list)
    console: bool = True
    escalation: str | None = None  # an oncall.policies name; else the first policy that matches

    def matches(self, labels: dict[str, str]) -> bool:
        return labels_match(self.match, labels)


class LokiConfig(_Model):
    url: str
    query: str


class CloudWatchLogsConfig(_Model):
    log_group: str
    region: str = "us-east-1"
    filter_pattern: str = ""
    endpoint_url: str | None = None


class LogsConfig(_Model):
    url: str | None = None
    file: str | None = None
    loki: LokiConfig | None = None
    cloudwatch: CloudWatchLogsConfig | None = None


class CloudWatchMetricConfig(_Model):
    namespace: str
    metric: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    statistic: str = "Average"


class MetricsConfig(_Model):
    prometheus: str | None = None
    queries: dict[str, str] = Field(default_factory=dict)
    cloudwatch: dict[str, CloudWatchMetricConfig] = Field(default_factory=dict)
    region: str = "us-east-1"
    endpoint_url: str | None = None


class RepoConfig(_Model):
    github: str | None = None
    api_url: str = "https://api.github.com"
    token: str = ""


class ErrorsConfig(_Model):
    sentry: str | None = None  # "org/project"
    api_url: str = "https://sentry.io/api/0"
    token: str = ""


class ShellAction(_Model):
    shell: list[str] = Field(min_length=1)
    timeout_s: float = 120.0
    env: dict[str, str] = Field(default_factory=dict)  # on top of PATH, HOME and LANG only


class HttpAction(_Model):
    class Spec(_Model):
        url: str
        method: str = "POST"
        headers: dict[str, str] = Field(default_factory=dict)
        body: dict[str, Any] | None = None
        timeout_s: float = 60.0

    http: Spec


class DockerAction(_Model):
    class Spec(_Model):
        container: str
        url: str | None = None  # docker host, e.g. unix:///var/run/docker.sock or http://...

    docker: Spec


class KubernetesAction(_Model):
    class Spec(_Model):
        deployment: str
        namespace: str = "default"
        api_url: str | None = None
        token: str = ""
        replicas: int | None = None

    kubernetes: Spec


class EcsAction(_Model):
    class Spec(_Model):
        cluster: str
        service: str
        region: str = "us-east-1"
        endpoint_url: str | None = None
        operation: Literal["force_new_deployment", "stop_task", "update_desired_count"] = (
            "force_new_deployment"
        )

    ecs: Spec


def _action_kind(v: Any) -> str | None:
    keys = v.keys() if isinstance(v, dict) else [k for k in _EXECUTORS if getattr(v, k, None)]
    found = [k for k in keys if k in _EXECUTORS]
    return found[0] if len(found) == 1 else None


_EXECUTORS = ("shell", "http", "docker", "kubernetes", "ecs")

ActionSpec = Annotated[
    Annotated[ShellAction, Tag("shell")]
    | Annotated[HttpAction, Tag("http")]
    | Annotated[DockerAction, Tag("docker")]
    | Annotated[KubernetesAction, Tag("kubernetes")]
    | Annotated[EcsAction, Tag("ecs")],
    Discriminator(
        _action_kind,
        custom_error_type="action_executor",
        custom_error_message="an action needs exactly one executor: " + ", ".join(_EXECUTORS),
    ),
]


class KubernetesSourceConfig(_Model):
    """Where the service runs in Kubernetes, for the investigation's `kubernetes` tool."""

    namespace: str = "default"
    deployment: str | None = None
    job: str | None = None
    selector: str | None = None  # a label selector for the pods, e.g. app=checkout
    api_url: str | None = None  # None: the in-cluster service account
    token: str = ""
    verify_ssl: bool = True
    log_lines: int = Field(default=50, gt=0)  # of each restarted container's previous run

    @model_validator(mode="after")
    def _names_a_workload(self) -> KubernetesSourceConfig:
        if not (self.deployment or self.job or self.selector):
            raise ValueError("set deployment, job or selector")
        return self


class ServiceConfig(_Model):
    match: dict[str, str] = Field(default_factory=dict)
    health_url: str | None = None
    kubernetes: KubernetesSourceConfig | None = None
    logs: LogsConfig | None = None
    metrics: MetricsConfig | None = None
    repo: RepoConfig | None = None
    errors: ErrorsConfig | None = None
    actions: dict[str, ActionSpec] = Field(default_factory=dict)
    approval: Literal["none", "approve", "two_person"] = "approve"
    runbook: str | None = None
    verify_timeout_s: float = Field(default=60.0, gt=0)  # health checks after an action
    # PromQL that is empty when the problem is gone; default: the alert's own expression
    # (from its generatorURL) when metrics.prometheus is set
    verify_query: str | None = None
    min_replicas: int = 1
    max_replicas: int = 50

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, v: dict[str, ActionSpec]) -> dict[str, ActionSpec]:
        allowed = {"restart", "scale_up", "rollback"}
        for name in v:
            if name not in allowed:
                raise ValueError(f"unknown action {name!r}; use one of {sorted(allowed)}")
        return v


Role = Literal["responder", "approver", "admin"]


class ConsoleLogin(_Model):
    """How one person signs in to the web console: a password (its hash) and/or a token."""

    password_hash: str = ""  # from `opsbot hash-password`
    token: str = ""

    @field_validator("password_hash")
    @classmethod
    def _hash_format(cls, v: str) -> str:
        if v:
            check_hash_format(v)
        return v


class PersonConfig(_Model):
    name: str
    aliases: list[str] = Field(default_factory=list)
    slack: str | None = None
    discord: str | None = None
    whatsapp: str | None = None
    jira: str | None = None
    email: str | None = None
    roles: list[Role] = Field(default_factory=lambda: list[Role](["responder"]))
    console: ConsoleLogin | None = None


class OverrideConfig(_Model):
    """`person` is on call instead of the rotation from `start` until `end`."""

    person: str
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> OverrideConfig:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset, e.g. 2026-12-24T18:00:00+00:00")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class RotationConfig(_Model):
    """People take turns in order; the shift hands off daily, or weekly on `start`'s weekday."""

    people: list[str] = Field(min_length=1)
    handoff: Literal["daily", "weekly"] = "weekly"
    at: time = time(9, 0)  # local hand-off time
    timezone: str = "UTC"
    start: date  # the first person's first shift begins on this date at `at`
    overrides: list[OverrideConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Europe/London)"
            ) from exc
        return v


Channel = Literal["whatsapp", "slack", "discord", "console"]


class EscalationStepConfig(_Model):
    # people by name or alias, "oncall" (the first rotation) or "oncall:<rotation>"
    notify: list[str] = Field(min_length=1)
    channels: list[Channel] = Field(default_factory=lambda: list[Channel](["whatsapp"]))
    wait_s: int = Field(default=300, ge=1)  # then, still unacknowledged, the next step


class EscalationPolicyConfig(_Model):
    match: dict[str, str] = Field(default_factory=dict)  # labels, e.g. {severity: critical}
    steps: list[EscalationStepConfig] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0)  # the last step is notified again this many times


class OnCallConfig(_Model):
    rotations: dict[str, RotationConfig] = Field(default_factory=dict)
    policies: dict[str, EscalationPolicyConfig] = Field(default_factory=dict)
    tick_s: float = Field(default=15.0, gt=0)  # how often due escalation steps are looked for


class AutoRemediateConfig(_Model):
    enabled: bool = False
    min_confidence: float = Field(default=0.75, ge=0, le=1)
    actions: list[str] = Field(default_factory=lambda: ["restart"])


class PolicyConfig(_Model):
    auto_remediate: AutoRemediateConfig = Field(default_factory=AutoRemediateConfig)
    approval_timeout_s: int = 900
    # People not in the directory: what may they do? The console user on loopback is admin.
    unknown_user_roles: list[Literal["responder", "approver", "admin"]] = Field(
        default_factory=list
    )


class RateConfig(_Model):
    """A destination's posting budget: `rate` messages a second, in bursts of up to `burst`."""

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)


# Each platform's documented limit per destination. Discord: 5 messages per 5 s in a channel.
# WhatsApp (Meta's pair rate, error 131056): about one message every 6 s to one number.
# Slack (chat.postMessage: about 1 a second per channel, short bursts) is per_channel_*.
RATE_PLATFORMS = ("slack", "discord", "whatsapp")
PLATFORM_RATES = {
    "discord": RateConfig(rate=1.0, burst=5),
    "whatsapp": RateConfig(rate=1 / 6, burst=3),
}


class OutboxConfig(_Model):
    max_attempts: int = 8
    base_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    lease_s: float = 30.0  # renewed every third of it while the work runs
    # messages per second per destination (a channel), for Slack and any platform not in `rates`
    per_channel_rate: float = Field(default=1.0, gt=0)
    per_channel_burst: int = Field(default=3, ge=1)
    # per platform, over per_channel_* (Slack) and the documented limits in PLATFORM_RATES
    rates: dict[str, RateConfig] = Field(default_factory=lambda: dict(PLATFORM_RATES))
    update_coalesce_s: float = 2.0
    people_concurrency: int = 4  # slots kept for people's messages and what they ask for
    stall_s: float = 120.0  # /readyz fails when no progress for this long while work is due
    restart_s: float = 1.0  # pause before the worker is restarted after an unexpected error
    # a Retry-After up to this long is waited out by the refused item itself: it keeps its
    # claim and its place at the head of its destination's line, and no delivery slot
    wait_in_place_s: float = Field(default=5.0, ge=0)

    @field_validator("rates")
    @classmethod
    def _with_documented(cls, rates: dict[str, RateConfig]) -> dict[str, RateConfig]:
        unknown = sorted(set(rates) - set(RATE_PLATFORMS))
        if unknown:
            raise ValueError(
                f"no chat platform {', '.join(unknown)}; rates are set for "
                + ", ".join(RATE_PLATFORMS)
            )
        return {**PLATFORM_RATES, **rates}  # a platform not named keeps its documented limit

    def limits(self, destination: str) -> tuple[float, int]:
        """(rate, burst) of an outbox destination ("platform:channel")."""
        own = self.rates.get(destination.split(":", 1)[0])
        return (own.rate, own.burst) if own else (self.per_channel_rate, self.per_channel_burst)


class StormConfig(_Model):
    """When new incidents for a channel outrun what its budget can post, the channel gets one
    digest message instead of a root each (see bot/chat/storm.py)."""

    enabled: bool = True
    # a storm: more new incidents waiting for a channel than its budget posts in this long
    window_s: float = Field(default=5.0, gt=0)
    quiet_s: float = Field(default=30.0, ge=0)  # over: no new incident for this long, few open
    edit_interval_s: float = Field(default=3.0, ge=0)  # the digest is edited at most this often
    max_edits: int = Field(default=20, ge=1)  # of one message; then it goes on in a new one
    # where messages cannot be edited (WhatsApp): the storm as it is now, in a new message at
    # most this often (each person's line; Twilio sends about one message a second per sender)
    resend_interval_s: float = Field(default=60.0, ge=0)
    tick_s: float = Field(default=2.0, gt=0)  # how often the leader looks for storms that ended


class Config(_Model):
    http: HttpConfig = Field(default_factory=HttpConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    llm: LlmConfig = Field(default_factory=LlmConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    discord: DiscordConfig = Field(default_factory=DiscordConfig)
    whatsapp: WhatsAppConfig = Field(default_factory=WhatsAppConfig)
    jira: JiraConfig = Field(default_factory=JiraConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    storm: StormConfig = Field(default_factory=StormConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    routes: list[RouteConfig] = Field(default_factory=lambda: [RouteConfig()])
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    people: list[PersonConfig] = Field(default_factory=list)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    oncall: OnCallConfig = Field(default_factory=OnCallConfig)
    source_path: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_people(self) -> Config:
        seen: set[str] = set()
        for p in self.people:
            for key in (p.name.lower(), *(a.lower() for a in p.aliases)):
                if key in seen:
                    raise ValueError(f"person name or alias {key!r} is used twice")
                seen.add(key)
        return self

    @model_validator(mode="after")
    def _oncall_names(self) -> Config:
        """Rotations, policies and routes name people, rotations and policies that exist."""
        oc = self.oncall
        for name, rot in oc.rotations.items():
            for who in rot.people + [o.person for o in rot.overrides]:
                if self.person(who) is None:
                    raise ValueError(f"oncall.rotations.{name}: {who!r} is not in people")
        for name, pol in oc.policies.items():
            for i, step in enumerate(pol.steps):
                for who in step.notify:
                    if not self._notifiable(who):
                        raise ValueError(
                            f"oncall.policies.{name}.steps.{i}.notify: {who!r} is neither a "
                            "person nor oncall / oncall:<rotation>"
                        )
        for i, route in enumerate(self.routes):
            if route.escalation and route.escalation not in oc.policies:
                raise ValueError(
                    f"routes.{i}.escalation: no policy {route.escalation!r} in oncall.policies"
                )
        return self

    def _notifiable(self, who: str) -> bool:
        if who == "oncall":
            return bool(self.oncall.rotations)
        if who.startswith("oncall:"):
            return who.removeprefix("oncall:") in self.oncall.rotations
        return self.person(who) is not None

    def whatsapp_number(self, who: str) -> str | None:
        """A route's `whatsapp:` entry (a person, or a number) → the number to message."""
        person = self.person(who)
        if person is not None:
            return person.whatsapp
        return who if who.startswith("+") else None

    def escalation_for(self, labels: dict[str, str]) -> str | None:
        """The escalation policy an incident follows: its route's, else the first matching."""
        route = self.route_for(labels)
        if route is not None and route.escalation:
            return route.escalation
        return next(
            (name for name, pol in self.oncall.policies.items() if labels_match(pol.match, labels)),
            None,
        )

    def label_service(self, labels: dict[str, str]) -> str | None:
        """The service the alert's labels name, in the configured order."""
        return service_from_labels(labels, self.webhooks.service_labels)

    def route_for(self, labels: dict[str, str]) -> RouteConfig | None:
        """First matching route wins (Alertmanager semantics)."""
        return next((r for r in self.routes if r.matches(labels)), None)

    def service_for(self, labels: dict[str, str], name: str | None = None) -> str | None:
        """The configured service an alert belongs to: by name, by the service its labels name
        (webhooks.service_labels), then by `match` labels."""
        for candidate in (name, self.label_service(labels)):
            if candidate and candidate in self.services:
                return candidate
        for svc, sc in self.services.items():
            if sc.match and labels_match(sc.match, labels):
                return svc
        return None

    def person(self, key: str | None) -> PersonConfig | None:
        """Find a person by name, alias or any platform id (case-insensitive)."""
        if not key:
            return None
        k = key.strip().lstrip("@").lower()
        for p in self.people:
            ids = [p.slack, p.discord, p.whatsapp, p.jira, p.email]
            names = [p.name, *p.aliases, p.name.split()[0]]
            if k in {n.lower() for n in names} or k in {i.lower() for i in ids if i}:
                return p
        return None


def interpolate(text: str) -> str:
    """Replace ${VAR} and ${VAR:-default} from the environment (missing → empty)."""

    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value in (None, "") and m.group(2) is not None:
            return m.group(2)
        return value or ""

    return _ENV_RE.sub(sub, text)


_ENV_FALLBACKS: dict[tuple[str, str], str] = {
    ("slack", "bot_token"): "SLACK_BOT_TOKEN",
    ("slack", "signing_secret"): "SLACK_SIGNING_SECRET",
    ("slack", "app_token"): "SLACK_APP_TOKEN",
    ("discord", "bot_token"): "DISCORD_BOT_TOKEN",
    ("discord", "public_key"): "DISCORD_PUBLIC_KEY",
    ("discord", "application_id"): "DISCORD_APPLICATION_ID",
    ("whatsapp", "account_sid"): "TWILIO_ACCOUNT_SID",
    ("whatsapp", "auth_token"): "TWILIO_AUTH_TOKEN",
    ("jira", "url"): "JIRA_URL",
    ("jira", "username"): "JIRA_USERNAME",
    ("jira", "api_token"): "JIRA_API_TOKEN",
    ("webhooks", "token"): "OPSBOT_WEBHOOK_TOKEN",
    ("admin", "token"): "OPSBOT_ADMIN_TOKEN",
}


def _apply_env_fallbacks(raw: dict[str, Any]) -> None:
    """The ecosystems' conventional variables work without a file (or fill blanks in one)."""
    for (section, key), var in _ENV_FALLBACKS.items():
        value = os.environ.get(var)
        if value and not (raw.get(section) or {}).get(key):
            raw.setdefault(section, {})
            if raw[section] is None:
                raw[section] = {}
            raw[section][key] = value
    llm = raw.get("llm") or {}
    if not llm.get("providers") and os.environ.get("OPENAI_API_KEY"):
        provider = {"name": "openai", "api_key": os.environ["OPENAI_API_KEY"]}
        if os.environ.get("OPENAI_BASE_URL"):
            provider["base_url"] = os.environ["OPENAI_BASE_URL"]
        if os.environ.get("OPENAI_MODEL"):
            provider["model"] = os.environ["OPENAI_MODEL"]
        raw["llm"] = {**llm, "providers": [provider]}


def find_config_path(explicit: str | Path | None) -> Path | None:
    """--config, else OPSBOT_CONFIG, else config/opsbot.yaml if it exists, else None."""
    if explicit:
        return Path(explicit)
    if os.environ.get("OPSBOT_CONFIG"):
        return Path(os.environ["OPSBOT_CONFIG"])
    return DEFAULT_PATH if DEFAULT_PATH.exists() else None


def _format_errors(path: str, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} configuration error(s)"]
    for err in exc.errors():
        parts = [str(p) for p in err["loc"]]
        # a tagged union repeats its tag in loc ("shell.shell"): keep the user's keys only
        loc = ".".join(p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1])
        lines.append(f"  {path}: {loc or '(top level)'}: {err['msg']}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None) -> Config:
    """Load, interpolate and validate; raises ConfigError naming file, key and problem."""
    found = find_config_path(path)
    raw: dict[str, Any] = {}
    label = str(found) if found else "(embedded default)"
    if found is not None:
        try:
            text = found.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{found}: cannot read configuration file: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(interpolate(text))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise ConfigError(f"{found}: invalid YAML{where}: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{found}: the top level must be a mapping of keys")
        raw = loaded
    _apply_env_fallbacks(raw)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(label, exc)) from exc
    cfg.source_path = str(found) if found else None
    return cfg
