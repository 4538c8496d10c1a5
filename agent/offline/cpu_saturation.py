"""CPU saturation: CPU pegged by runaway work (hot loop, backtracking regex, blocked event
loop) while traffic is flat, so load does not explain it."""

from __future__ import annotations

import re

from agent.offline import kube, memory_leak
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

RUNAWAY = (
    s.pattern("gunicorn_timeout", r"WORKER TIMEOUT", 0.25),
    s.pattern("uwsgi_harakiri", r"HARAKIRI|harakiri", 0.25),
    s.pattern(
        "event_loop_blocked",
        r"event loop (was )?(blocked|delay|lag)|Event loop blocked|blocked the event loop",
        0.2,
        ignore_case=True,
    ),
    s.pattern(
        "stuck_thread",
        r"Thread starvation or clock leap|STUCK|[Hh]ung thread|stuck thread|"
        r"blocked for \d+ ?ms|Blocked thread",
        0.2,
    ),
    s.pattern("soft_lockup", r"soft lockup|CPU#?\d+ stuck", 0.2),
    s.pattern(
        "regex", r"catastrophic backtracking|regex (timeout|took)|ReDoS", 0.15, ignore_case=True
    ),
    s.pattern(
        "slow_op",
        r"\b(slow|took|timed out after)\b[^\n]{0,60}\b\d+(\.\d+)?\s?s\b",
        0.1,
        ignore_case=True,
    ),
    s.pattern(
        "throttled", r"CPU throttl|cpu_cfs_throttled|CPUThrottlingHigh", 0.15, ignore_case=True
    ),
)
_CPU_TEXT = re.compile(r"\bCPU\b|cpu", re.IGNORECASE)
# CFS throttling (cAdvisor's container_cpu_cfs_throttled_periods_total over _periods_total, or a
# precomputed ratio/percent): the container wants more CPU than its limit gives it.
THROTTLING = re.compile(r"throttl", re.IGNORECASE)
_THROTTLED_SHARE = 0.25
_THROTTLING_ALERT = re.compile(r"CPUThrottlingHigh|throttling of CPU", re.IGNORECASE)


def throttled(obs: Observations) -> s.Shape | None:
    """The CPU-throttling series, when a quarter or more of the periods are throttled."""
    for m in s.metrics_named(obs, THROTTLING):
        share = m.current / 100 if s.is_percent(m) or m.current > 1 else m.current
        if share >= _THROTTLED_SHARE:
            return m
    return None


class CpuSaturation:
    name = "cpu_saturation"
    category = Category.CPU_SATURATION
    action = ActionKind.RESTART

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        cpu = s.metric(obs, s.CPU, exclude=THROTTLING)
        hits = s.observed(obs, RUNAWAY)
        stepped = cpu is not None and cpu.ratio >= 1.5
        hot = cpu is not None and (s.saturated(cpu) or (stepped and cpu.current >= 80))
        throttle = throttled(obs)
        at_limit = kube.cpu_at_limit(obs)
        throttle_alert = s.alert_hit(ctx, _THROTTLING_ALERT)
        if not (hot or hits or throttle or at_limit or throttle_alert):
            return None
        requests = s.requests(obs)
        if requests is not None and requests.ratio >= 1.8:
            return None  # more work arrived: that is load, not runaway work
        case = Case()
        if cpu is not None and hot:
            case.add(0.35 if s.saturated(cpu) and stepped else 0.2, cpu.evidence)
        case.add(s.weight(hits, 0.4), *s.quotes(hits, 3))
        if throttle is not None:
            case.add(0.3, throttle.evidence)
        if at_limit is not None:
            case.add(0.3, *(line.evidence() for line in at_limit))
        if throttle_alert is not None and not (throttle or at_limit):
            case.add(0.3, throttle_alert)  # kube-prometheus CPUThrottlingHigh
        frame = s.frame_near(obs, hits)
        case.cite([frame.evidence] if frame else [])
        if requests is not None and hot:
            case.add(0.15, requests.evidence)
        alert = s.alert_hit(ctx, _CPU_TEXT)
        case.add(0.1 if alert else 0.0, alert)
        memory = s.metric(obs, s.MEMORY)
        if memory_leak.out_of_memory(obs) or (memory is not None and memory.grows):
            case.score *= 0.5  # garbage collection of a leaking heap burns CPU too
        latency = s.latency(obs)
        if latency is not None and latency.stepped(3.0):
            case.cite([latency.evidence])

        onset = cpu.onset_minutes_ago() if cpu is not None else None
        deploy = s.recent_deploy(obs)
        blamed = deploy is not None and onset is not None and s.started_after(deploy, onset)
        if deploy is not None and blamed:
            case.cite([s.deploy_evidence(deploy)])
        level = (
            f"CPU at {s.fmt(cpu.current)}% "
            if cpu is not None and hot
            else "CPU is pinned at the container's limit and throttled "
            if throttle or at_limit
            else "CPU is pegged "
        )
        flat = (
            f"while traffic is flat ({requests.describe()})"
            if requests is not None
            else "without a rise in traffic"
        )
        symptom = f" Workers stall: {hits[0].quote}." if hits else ""
        where = f" The stuck code is {frame.describe()}." if frame else ""
        return case.finding(
            self,
            headline=(
                f"CPU saturated by runaway work in {frame.where}"
                if frame
                else "CPU saturated by runaway work, not by traffic"
            ),
            root_cause=(
                f"{level}{flat}: requests are stuck in CPU-bound work (a hot loop, a "
                f"backtracking regex or a blocked event loop).{symptom}{where}"
                + (f" It began after deploy {s.deploy_quote(deploy)}." if deploy and blamed else "")
            ),
            checks=(
                "Profile a busy worker (py-spy dump, jstack, pprof, --cpu-prof) to see the hot "
                "code",
                "Find the input that triggers it (payload size, a vendor feed, a long field)",
                "Check whether the hot path has a timeout or input-length limit",
            ),
            mitigation=(
                "Roll back the deploy that introduced the hot path"
                if blamed
                else "Restart the stuck workers to recover capacity, then bound or fix the hot "
                "code "
                "(input length limits, a linear-time regex); block the triggering input if known"
            ),
            action=ActionKind.ROLLBACK if blamed else self.action,
        )


RULE = CpuSaturation()
