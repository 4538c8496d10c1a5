"""Crash loop: the process fails at start-up (bad config, missing secret or file, failed
migration, missing module) and the orchestrator keeps restarting it."""

from __future__ import annotations

import re

from agent.offline import db_connections, dependency_down, memory_leak
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, Evidence, IncidentContext, Observations

LOOPING = (
    s.pattern("backoff", r"Back-off restarting failed container", 0.35),
    s.pattern("crashloop", r"CrashLoopBackOff", 0.35),
    s.pattern(
        "restart_loop",
        r"start request repeated too quickly|Start request repeated too quickly|"
        r"Essential container in task exited|Restarting \(\d+\)|restart count \d+",
        0.3,
    ),
    s.pattern(
        "k8s_start_error",
        r"RunContainerError|CreateContainerConfigError|CreateContainerError|"
        r"Init:(CrashLoopBackOff|Error|RunContainerError)|\bStartError\b",
        0.35,
    ),
    # A Job's pods fail until its backoffLimit (the job controller's event and describe line).
    s.pattern(
        "job_failed",
        r"BackoffLimitExceeded|Job has reached the specified backoff limit|"
        r"Pods Statuses:\s+\d+ Active[^\n]*\b[1-9]\d* Failed",
        0.35,
    ),
    # kubelet cannot mount what the pod needs to start (a ConfigMap, Secret or volume).
    s.pattern(
        "mount_failed",
        r"MountVolume\.SetUp failed for volume [^\n]*|Unable to attach or mount volumes[^\n]*|"
        r"FailedMount",
        0.35,
    ),
)
# Signs of a process dying that, alone, do not make a loop.
EXITS = (
    s.pattern("probe_kill", r"Liveness probe failed", 0.05),
    s.pattern(
        "exited",
        r"exited with (code|status) [1-9]\d*|Exit Code:\s+[1-9]|code=exited, status=[1-9]|"
        r"terminated with exit code [1-9]",
        0.1,
    ),
)
RESTARTING = LOOPING + EXITS
STARTUP_FAILURES = (
    s.pattern(
        "bad_config",
        r"[Ii]nvalid config(uration)?|failed to (load|parse|read) config(uration)?|"
        r"config(uration)? (error|invalid)|ConfigurationError|ImproperlyConfigured|"
        r"APPLICATION FAILED TO START",
        0.25,
    ),
    s.pattern(
        "missing_setting",
        r"(?i:environment variable|env var|setting|secret|key)\b[^\n]{0,40}\b(is )?(not set|"
        r"missing|required|not found|undefined)|missing required|KeyError: '[A-Z][A-Z0-9_]+'|"
        r"CreateContainerConfigError|(secret|configmap) \"[\w.-]+\" not found|"
        r"unable to pull secrets|couldn't find key \S+ in (Secret|ConfigMap) \S+",
        0.25,
    ),
    s.pattern("no_such_file", r"no such file or directory|No such file or directory|ENOENT", 0.2),
    s.pattern("permission", r"[Pp]ermission denied|EACCES|\b403\b[^\n]{0,40}denied", 0.15),
    s.pattern(
        "missing_code",
        r"Cannot find module|ModuleNotFoundError|ImportError|ClassNotFoundException|"
        r"NoClassDefFoundError|exec format error|(exec: \"[^\"]+\": )?executable file not found"
        r"( in \$PATH)?",
        0.2,
    ),
    s.pattern(
        "migration",
        r"migration[s]? failed|failed to (run|apply) migration|PendingMigrationError|"
        r"pending migration",
        0.2,
        ignore_case=True,
    ),
    s.pattern("bind", r"address already in use|EADDRINUSE", 0.2),
    # The container's shell cannot run its command (sh, bash and dash word these alike).
    s.pattern(
        "shell",
        r"/bin/(?:ba|da|z)?sh: (?:line \d+: )?[^\n]*(?:syntax error|not found|can't open|"
        r"[Pp]ermission denied)[^\n]*|syntax error near unexpected token[^\n]*",
        0.25,
    ),
    s.pattern("fatal_start", r"\bFATAL\b|\bfatal\b|panic: |Uncaught|Error: ", 0.05),
)
# A database or upstream failing: a process that dies on that is a symptom of it.
DEPENDENCY_FAILURES = (
    *db_connections.SERVER_FULL,
    *db_connections.POOL_EMPTY,
    *(p for p in dependency_down.FAILURES if p.name in ("db_connect", "mongo", "refused", "dns")),
)
_ALERT = re.compile(
    r"CrashLoop|crash[- ]?loop|restart(ed|ing)? \d+ times|restart loop|"
    r"CreateContainerConfigError|CreateContainerError|RunContainerError",
    re.IGNORECASE,
)
_CONFIG_CHANGE = re.compile(r"config|env|secret|setting|flag|url|values", re.IGNORECASE)


def _climbing(restarts: s.Shape | None) -> bool:
    return restarts is not None and restarts.values[-1] - restarts.values[0] >= 3


def looping(ctx: IncidentContext, obs: Observations) -> bool:
    """Whether the orchestrator reports the service restarting over and over."""
    return bool(
        s.observed(obs, LOOPING) or _climbing(s.metric(obs, s.RESTARTS)) or s.alert_hit(ctx, _ALERT)
    )


class CrashLoop:
    name = "crash_loop"
    category = Category.CRASH_LOOP
    action = ActionKind.NONE

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        loop = s.observed(obs, RESTARTING)
        restarts = s.metric(obs, s.RESTARTS)
        climbing = _climbing(restarts)
        alert = s.alert_hit(ctx, _ALERT)
        if not (loop or climbing or alert):
            return None
        causes = s.observed(obs, STARTUP_FAILURES)
        frame = s.frame_near(obs, causes)
        case = Case()
        case.add(s.weight(loop, 0.5), *s.quotes(loop, 1))
        case.add(s.weight(causes, 0.35), *s.quotes(causes, 2))
        case.cite(s.quotes(loop, 2)[1:])
        if restarts is not None and climbing:
            count = f"{restarts.name} {s.fmt(restarts.values[0])} -> {s.fmt(restarts.values[-1])}"
            case.add(0.1, Evidence(tool="metrics", quote=count))
        case.add(0.15 if alert else 0.0, alert)
        if memory_leak.out_of_memory(obs):
            case.score *= 0.5  # killed for memory, not failing to start: a memory problem
        specific = [c for c in causes if c.pattern.name != "fatal_start"]
        if not specific and s.observed(obs, DEPENDENCY_FAILURES):
            case.score *= 0.5  # it crashes on what a dependency answers: name the dependency

        deploy = s.recent_deploy(obs)
        tracked = {h.line for h in causes if h.tool == "errors"}
        began = [i.first_seen_minutes_ago for i in obs.errors if i.title in tracked]
        began += [restarts.first_rise_minutes_ago()] if restarts is not None else []
        if deploy is not None and any(s.predates(deploy, onset) for onset in began):
            deploy = None  # it was already crash-looping before the deploy
        suspect = deploy is not None and (
            bool(_CONFIG_CHANGE.search(deploy.message))
            or any(_token_in(c.line, deploy.message) for c in causes)
        )
        if deploy is not None:
            case.add(0.05, s.deploy_evidence(deploy))
        case.cite(s.quotes(causes, 3)[2:])
        case.cite([frame.evidence] if frame else [])

        cause = causes[0].quote if causes else "the start-up error is not in the logs shown"
        where = f", in {frame.describe()}" if frame else ""
        change = (
            f" It began with deploy {s.deploy_quote(deploy)}"
            + (", a config change that matches the error." if suspect else ".")
            if deploy
            else " No deploy in the last hour: something in the environment changed (a secret, "
            "a mounted file, a permission, a dependency at start-up)."
        )
        return case.finding(
            self,
            headline="crash loop at start-up" + (f": {causes[0].phrase}" if causes else ""),
            root_cause=(
                "The process exits during start-up and is restarted repeatedly: "
                f"{cause}{where}.{change}"
            ),
            checks=(
                "Read the previous container's last lines: kubectl logs POD --previous",
                "kubectl describe pod POD: last state, exit code, events (mounts, secrets, probes)",
                "Compare the config, secrets and mounted files the new pods get with the last "
                "working ones",
            ),
            mitigation=(
                f"Roll back {deploy.sha} to the last working config, then fix and redeploy"
                if deploy
                else "Restarting will not help: a human must restore what start-up needs (the "
                "secret, file, permission or setting) and the pods will then start"
            ),
            action=ActionKind.ROLLBACK if deploy else self.action,
        )


def _token_in(error: str, message: str) -> bool:
    """Whether the start-up error names something the deploy message mentions (REDIS_URL)."""
    tokens = {t for t in re.findall(r"[A-Za-z_][A-Za-z0-9_]{3,}", error) if not t.islower()}
    return any(t in message for t in tokens)


RULE = CrashLoop()
