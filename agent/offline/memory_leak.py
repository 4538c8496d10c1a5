"""Memory leak: memory grows until the runtime or the kernel kills the process (JVM, V8, Go,
Python, kernel OOM killer, Kubernetes OOMKilled), often with GC thrash on the way."""

from __future__ import annotations

import re

from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, Evidence, IncidentContext, Observations
from integrations.observability.model import Deploy

OUT_OF_MEMORY = (
    s.pattern(
        "runtime_oom",
        r"java\.lang\.OutOfMemoryError(: [\w ]+)?|OutOfMemory(Error|Exception)(: [\w ]+)?|"
        r"NoMemoryError|failed to allocate memory",
        0.5,
    ),
    s.pattern("gc_overhead", r"GC overhead limit exceeded", 0.45),
    s.pattern("v8_oom", r"JavaScript heap out of memory", 0.5),
    s.pattern(
        "v8_heap_limit", r"Reached heap limit|Ineffective mark-compacts near heap limit", 0.2
    ),
    s.pattern("go_oom", r"runtime: out of memory|fatal error: out of memory", 0.45),
    s.pattern("python_oom", r"^\s*MemoryError\b|\bMemoryError: |\bMemoryError$", 0.45),
    s.pattern(
        "kernel_oom",
        r"Out of memory: Kill(ed)? process|invoked oom-killer|oom[-_]kill|"
        r"Memory cgroup out of memory",
        0.45,
    ),
    s.pattern("k8s_oomkilled", r"OOMKilled", 0.45),
    s.pattern(
        "killed_oom",
        r"\b(process|worker|pid|task|container)\b[^\n]{0,40}\bkilled\b[^\n]{0,12}out of memory",
        0.4,
        ignore_case=True,
    ),
    s.pattern(
        "sigkill",
        r"(exit(ed)?( with)?|Exit) (code|status)[:=]? ?137\b|Exit Code:\s+137\b|"
        r"signal 9 \(SIGKILL\)|signal: killed|"
        r"Perhaps out of memory",
        0.2,
    ),
    s.pattern("bad_alloc", r"std::bad_alloc|Cannot allocate memory|cannot allocate memory", 0.3),
    s.pattern("quota", r"R14 \(Memory quota exceeded\)|Memory limit (reached|exceeded)", 0.35),
)
GC_THRASH = (
    s.pattern("jvm_full_gc", r"Pause Full\b|Full GC \(", 0.15),
    s.pattern("v8_mark_compact", r"Mark-Compact .* allocation failure", 0.1),
    s.pattern("python_gc", r"gc: collecting generation 2", 0.05),
)
LEAK_HINTS = (
    s.pattern("emitter_leak", r"Possible EventEmitter memory leak detected", 0.2),
    s.pattern("memory_leak", r"memory leak", 0.15, ignore_case=True),
    s.pattern(
        "heap_high", r"heap (usage|used)[^\n]{0,20}(above|over|exceeds?) \d+", 0.1, ignore_case=True
    ),
    s.pattern(
        "unbounded",
        r"eviction disabled|unbounded (cache|queue|map)|evictions[=:] ?0\b",
        0.1,
        ignore_case=True,
    ),
    s.pattern(
        "growing",
        r"\b\d+(\.\d+)? ?[KMG]i?B\b[^\n]{0,20}\band (still )?growing\b",
        0.1,
        ignore_case=True,
    ),
)
_OOM_TEXT = re.compile(
    r"OutOfMemory|out of memory|\bOOM|heap limit|MemoryError|memory (above|near|usage|limit)|"
    r"Memory_?Util|MemoryNearLimit|MemoryHigh",
    re.IGNORECASE,
)


# Who else sends SIGKILL (exit code 137): the kubelet after failed liveness or startup probes,
# the eviction manager for disk or PID pressure, the scheduler's preemption.
_OTHER_KILLER = (
    s.pattern(
        "other_killer",
        r"failed (liveness|startup) probe, will be restarted|(Liveness|Startup) probe failed|"
        r"low on resource: (ephemeral-storage|pids|nodefs|imagefs)|Preempt(ed|ing)",
        0.0,
    ),
)
_WEAK = ("sigkill",)  # a bare SIGKILL or exit code 137 names no killer
# A JVM frame: "  at pkg.Class.method(File.java:48)".
_FRAME_LINE = re.compile(r"^\s+at [\w$.<>]+\(")
# Restarted over and over: kubelet's back-off, Flink's job status, systemd's start limit.
_RESTARTING = re.compile(
    r"CrashLoopBackOff|Back-off restarting failed container|\bRESTARTING\b|"
    r"[Rr]estart(ed|ing)? \d+ times|[Ss]tart request repeated too quickly"
)


def _restarting(ctx: IncidentContext, obs: Observations) -> bool:
    return s.alert_hit(ctx, _RESTARTING) is not None or any(
        _RESTARTING.search(line) for line in (*obs.kubernetes, *obs.logs)
    )


def oom_hits(obs: Observations) -> list[s.Hit]:
    """Where a runtime or the kernel reports running out of memory. A bare SIGKILL (exit code
    137) counts only while nothing else visible sent it."""
    hits = s.observed(obs, OUT_OF_MEMORY)
    if all(h.pattern.name in _WEAK for h in hits) and s.observed(obs, _OTHER_KILLER):
        return []
    return hits


def only_sigkill(hits: list[s.Hit]) -> bool:
    return bool(hits) and all(h.pattern.name in _WEAK for h in hits)


def out_of_memory(obs: Observations) -> bool:
    """Something names memory as the reason the process died (not a bare SIGKILL)."""
    hits = oom_hits(obs)
    return bool(hits) and not only_sigkill(hits)


def _began_before(deploy: Deploy, memory: s.Shape | None, obs: Observations) -> bool:
    onsets = [i.first_seen_minutes_ago for i in s.matching_issues(obs, _OOM_TEXT)]
    if memory is not None:
        onsets.append(memory.rise_start_minutes_ago())
    return any(s.predates(deploy, onset) for onset in onsets)


class MemoryLeak:
    name = "memory_leak"
    category = Category.MEMORY_LEAK
    action = ActionKind.RESTART

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        oom = oom_hits(obs)
        memory = s.metric(obs, s.MEMORY)
        growing = memory is not None and memory.grows and s.near_limit(memory, 85)
        if not (oom or growing):
            return None
        gc = s.find(obs.logs, GC_THRASH)
        hints = s.find(obs.logs, LEAK_HINTS)
        frame = s.frame_near(obs, oom)
        site = None if frame else _allocation_site(obs, oom)
        deploy = s.recent_deploy(obs)
        if deploy is not None and _began_before(deploy, memory if growing else None, obs):
            deploy = None  # the leak was already growing: the deploy did not start it
        case = Case()
        case.add(s.weight(oom[:2], 0.55), *s.quotes(oom, 2))
        case.add(s.weight(hints, 0.2), *s.quotes(hints, 1))
        case.add(s.weight(gc, 0.15), *s.quotes(gc, 1))
        case.cite([frame.evidence] if frame else [site] if site else [])
        if memory is not None and growing:
            case.add(0.3, Evidence(tool="metrics", quote=memory.describe_growth()))
        elif memory is not None and s.saturated(memory, 90):
            case.add(0.15, memory.evidence)
        issues = s.matching_issues(obs, _OOM_TEXT)
        if issues and all(h.tool == "logs" for h in oom):  # else the issue is already quoted
            case.add(0.1, s.issue_evidence(issues[0]))
        alert = s.alert_hit(ctx, _OOM_TEXT)
        case.add(0.1 if alert else 0.0, alert)
        if obs.health is not None and not obs.health.healthy:
            case.cite([s.health_evidence(obs)])
        if deploy is not None:
            case.cite([s.deploy_evidence(deploy)])

        # Already restarting over and over with no growth seen: memory runs out right at start.
        again = bool(oom) and not (growing or hints) and _restarting(ctx, obs)
        story = [
            "It runs out of memory again after every restart, with no slow growth seen: what it "
            "allocates while starting or for its first work is more than it is given"
            if again
            else "Memory is retained and never freed until the process hits its limit"
        ]
        if memory is not None and growing:
            story.append(f" ({memory.describe_growth()})")
        story.append(
            f"; the runtime then fails with {oom[0].text}" if oom else "; it will fail at the limit"
        )
        story.append(" and spends its time in full garbage collections." if gc else ".")
        if frame:
            story.append(f" The allocation that failed was in {frame.describe()}.")
        if hints:
            story.append(f" The logs point at the leak: {hints[0].quote}.")
        if deploy:
            story.append(
                f" It started after deploy {s.deploy_quote(deploy)}, which likely caused it."
            )
        return case.finding(
            self,
            headline=(
                f"the process was killed ({oom[0].text}), possibly for memory: nothing says who "
                "sent the SIGKILL"
                if only_sigkill(oom) and not growing
                else "memory leak, the process runs out of memory"
                + (f" ({oom[0].text})" if oom else "")
            ),
            root_cause="".join(story),
            checks=(
                "Take a heap dump or heap profile before restarting, to find what is retained",
                "Compare memory of pods started recently with old ones: a leak grows with uptime",
                "Look for caches, registries or listeners that only ever grow",
            ),
            mitigation=(
                "Roll back the deploy that introduced the leak, then fix it in code"
                if deploy
                else "Restarting will not help: it runs out of memory again as soon as it is "
                "restarted. A human must give it more memory or make it allocate less"
                if again
                else "Restart to reclaim memory now (it will come back), then fix the leak; "
                "raise the memory limit only as a stopgap"
            ),
            action=ActionKind.ROLLBACK if deploy else ActionKind.NONE if again else self.action,
        )


def _allocation_site(obs: Observations, oom: list[s.Hit]) -> Evidence | None:
    """The stack frame printed right under the out-of-memory error (library code included):
    what was allocating when memory ran out."""
    for hit in oom:
        if hit.tool == "logs" and hit.index + 1 < len(obs.logs):
            below = obs.logs[hit.index + 1]
            if _FRAME_LINE.match(below):
                return Evidence(tool="logs", quote=s.clip(below))
    return None


RULE = MemoryLeak()
