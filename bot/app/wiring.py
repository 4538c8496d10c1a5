"""From configuration to working parts: each service's sources and executors, the LLM chain."""

from __future__ import annotations

from agent.llm.chain import ProviderChain, ProviderSettings
from agent.loop import InvestigationLimits
from agent.pipeline import PipelineSettings
from agent.sources import PastIncidentSource, Sources
from bot.app.config import (
    ActionSpec,
    Config,
    DockerAction,
    EcsAction,
    HttpAction,
    KubernetesAction,
    LlmConfig,
    ServiceConfig,
    ShellAction,
)
from bot.app.secrets import redact_patterns
from integrations.actions.base import Executor
from integrations.actions.docker import DockerExecutor
from integrations.actions.ecs import EcsExecutor
from integrations.actions.http import HttpExecutor
from integrations.actions.kubernetes import KubernetesExecutor
from integrations.actions.shell import ShellExecutor
from integrations.observability.cloudwatch import CloudWatchMetric, CloudWatchMetricsSource
from integrations.observability.github import GitHubDeploySource
from integrations.observability.health import HttpHealthSource
from integrations.observability.kubernetes import KubernetesSource
from integrations.observability.logs import (
    CloudWatchLogSource,
    FileLogSource,
    HttpLogSource,
    LokiLogSource,
)
from integrations.observability.model import LogSource, MetricsSource
from integrations.observability.prometheus import PrometheusSource
from integrations.observability.sentry import SentryErrorSource


def _logs(svc: ServiceConfig) -> LogSource | None:
    c = svc.logs
    if c is None:
        return None
    if c.file:
        return FileLogSource(c.file)
    if c.url:
        return HttpLogSource(c.url)
    if c.loki:
        return LokiLogSource(c.loki.url, c.loki.query)
    if c.cloudwatch:
        cw = c.cloudwatch
        return CloudWatchLogSource(cw.log_group, cw.region, cw.filter_pattern, cw.endpoint_url)
    return None


def _metrics(svc: ServiceConfig) -> MetricsSource | None:
    c = svc.metrics
    if c is None:
        return None
    if c.prometheus and c.queries:
        return PrometheusSource(c.prometheus, c.queries)
    if c.cloudwatch:
        specs = {
            name: CloudWatchMetric(m.namespace, m.metric, m.dimensions, m.statistic)
            for name, m in c.cloudwatch.items()
        }
        return CloudWatchMetricsSource(specs, c.region, c.endpoint_url)
    return None


def _kubernetes(svc: ServiceConfig) -> KubernetesSource | None:
    k = svc.kubernetes
    if k is None:
        return None
    return KubernetesSource(
        k.namespace,
        deployment=k.deployment,
        job=k.job,
        selector=k.selector,
        api_url=k.api_url,
        token=k.token,
        verify_ssl=k.verify_ssl,
        log_lines=k.log_lines,
    )


def sources_for(
    cfg: Config, service: str | None, past: PastIncidentSource | None = None
) -> Sources:
    """The tools an investigation of `service` may use (only `past` when it is unknown)."""
    svc = cfg.services.get(service or "")
    if svc is None:
        return Sources(past=past)
    repo, errors = svc.repo, svc.errors
    return Sources(
        logs=_logs(svc),
        metrics=_metrics(svc),
        deploys=GitHubDeploySource(repo.github, repo.api_url, repo.token)
        if repo and repo.github
        else None,
        errors=SentryErrorSource(errors.sentry, errors.api_url, errors.token)
        if errors and errors.sentry
        else None,
        health=HttpHealthSource(svc.health_url) if svc.health_url else None,
        kubernetes=_kubernetes(svc),
        past=past,
    )


def executor_for(spec: ActionSpec) -> Executor:
    match spec:
        case ShellAction():
            return ShellExecutor(spec.shell, spec.timeout_s, env=spec.env)
        case HttpAction(http=h):
            return HttpExecutor(h.url, h.method, h.headers, h.body, h.timeout_s)
        case DockerAction(docker=d):
            return DockerExecutor(d.container, d.url)
        case KubernetesAction(kubernetes=k):
            return KubernetesExecutor(
                k.deployment, k.namespace, k.api_url, k.token, replicas=k.replicas
            )
        case EcsAction(ecs=e):
            return EcsExecutor(e.cluster, e.service, e.region, e.endpoint_url, e.operation)
    raise TypeError(f"unknown action spec {spec!r}")


def pipeline_settings(cfg: Config) -> PipelineSettings:
    """The diagnosis pipeline exactly as configured: `opsbot run` and `opsbot eval --llm` alike
    (the config's own secrets are masked before the LLM, with `llm.redact_patterns`)."""
    llm = cfg.llm
    return PipelineSettings(
        cache_ttl_s=llm.cache_ttl_s,
        limits=InvestigationLimits(
            max_tool_rounds=llm.max_tool_rounds,
            timeout_s=llm.investigation_timeout_s,
            token_budget=llm.investigation_token_budget,
            tool_output_budget_chars=llm.tool_output_budget_chars,
        ),
        redact_patterns=redact_patterns(cfg),
    )


def provider_chain(llm: LlmConfig) -> ProviderChain | None:
    """None when no provider is configured: the offline engine is then the brain."""
    if not llm.providers:
        return None
    return ProviderChain.from_config(
        [
            ProviderSettings(
                p.name, p.base_url, p.api_key, p.model, p.timeout_s, p.json_mode, p.max_tokens
            )
            for p in llm.providers
        ],
        breaker_failures=llm.breaker_failures,
        breaker_cooldown_s=llm.breaker_cooldown_s,
    )
