"""OOMKilled: the kubelet reports a container terminated with reason OOMKilled (exit code 137)
because it went over its memory limit; the limit and what the container ran say why."""

from __future__ import annotations

import re

from agent.offline import kube, memory_leak
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

_OOM_EVENTS = ("OOMKilled", "OOMKilling")
_CRASH_WAIT = ("CrashLoopBackOff",)
_OOM_ROW = re.compile(r"OOMKilled")
_MEMORY_EVICTION = re.compile(r"low on resource: memory")
# The kill as a log or event message words it ("... was killed due to out of memory").
_KILL_MESSAGE = tuple(p for p in memory_leak.OUT_OF_MEMORY if p.name == "killed_oom")


def _killed(f: kube.Facts) -> list[kube.Container]:
    return [c for c in f.containers if "OOMKilled" in c.reasons()]


def _dies_at_once(c: kube.Container) -> bool:
    """Killed in the second it started, and waiting to be restarted: memory is exhausted by
    start-up itself, so a restart only repeats it."""
    last = c.last or c.state
    instant = last is not None and last.started is not None and last.started == last.finished
    waiting = c.state is not None and c.state.reason in _CRASH_WAIT
    return instant or (waiting and not c.ready and (c.restarts or 0) >= 5)


class OomKilled:
    name = "oom_killed"
    category = Category.MEMORY_LEAK
    action = ActionKind.RESTART

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        f = kube.facts(obs)
        killed = _killed(f)
        events = f.warnings(*_OOM_EVENTS)
        rows = f.status_lines(_OOM_ROW)
        evicted = [
            e for e in f.events if e.reason == "Evicted" and _MEMORY_EVICTION.search(e.message)
        ]
        alert = s.alert_hit(ctx, _OOM_ROW)  # e.g. a `reason="OOMKilled"` label
        if not (killed or events or rows or evicted or alert):
            return None
        case = Case()
        container = killed[0] if killed else None
        slot = (
            next((x for x in container.slots() if x.reason == "OOMKilled"), None)
            if container
            else None
        )
        if slot is not None and slot.reason_line is not None:
            case.add(0.5, slot.reason_line.evidence())
        elif events or rows:
            case.add(0.4, *(e.evidence() for e in events[:1]), *(r.evidence() for r in rows[:1]))
        elif evicted:  # evicted because the node ran out of memory, this pod using the most
            case.add(0.35, *(e.evidence() for e in evicted[:1]))
        if alert is not None:
            case.add(0.1 if case.evidence else 0.4, alert)
        limit = container.limits.get("memory") if container else None
        if limit is not None:
            case.add(0.1, limit.evidence())
        if slot is not None and slot.exit_line is not None:
            case.add(0.05, slot.exit_line.evidence())
        runtime = s.observed(obs, _KILL_MESSAGE)
        case.add(0.1 if runtime else 0.0, *s.quotes(runtime, 1))
        if container is not None and container.command:
            case.cite([container.command[-1].evidence()])
        if container is not None and (container.restarts or 0) >= 3 and container.restart_line:
            case.add(0.1, container.restart_line.evidence())
        case.cite([e.evidence() for e in events[:1]])
        case.cite([e.evidence() for e in f.warnings("BackOff")[:1]])
        if container is None and evicted:
            return self._evicted(case, evicted[0], f)

        name = f"container {container.name}" if container and container.name else "the container"
        limit_text = limit.text.split(":", 1)[-1].strip() if limit else "its memory limit"
        instant = container is not None and _dies_at_once(container)
        command = " ".join(c.text.strip() for c in container.command) if container else ""
        cause = (
            f" It is killed as soon as it starts (`{command}`): start-up alone needs more than the "
            "limit, so the command or the limit has to change."
            if instant and command
            else " It is killed as soon as it starts: start-up alone needs more than the limit."
            if instant
            else " Memory grows while it runs until it reaches the limit."
        )
        restarts = (
            f", restarted {container.restarts} times" if container and container.restarts else ""
        )
        return case.finding(
            self,
            headline=f"{name} OOMKilled at its {limit_text} memory limit",
            root_cause=(
                f"The kernel's OOM killer ended {name} (reason OOMKilled, exit code 137) when it "
                f"used more than its {limit_text} memory limit{restarts}.{cause}"
            ),
            checks=(
                "kubectl describe pod POD: Last State, Exit Code and the memory limit",
                "Compare the container's memory use over its lifetime with the limit "
                "(container_memory_working_set_bytes)",
                "Take a heap profile of a running pod before the next kill",
            ),
            mitigation=(
                "Restarting will not help: a human must change the command or raise the memory "
                "limit"
                if instant
                else "Restart to reclaim memory now, then find what grows; raise the limit only "
                "as a stopgap"
            ),
            action=ActionKind.NONE if instant else self.action,
        )

    def _evicted(self, case: Case, evicted: kube.Event, f: kube.Facts) -> Finding:
        """The kubelet evicted the pod because the node ran low on memory: the pod used more
        than it requested (the kubelet names it), so it was first in line."""
        tainted = [e for e in f.warnings("FailedScheduling") if _PRESSURE_TAINT.search(e.message)]
        case.add(0.1 if tainted else 0.0, *(e.evidence() for e in tainted[:1]))
        usage = _OVER_REQUEST.search(evicted.message)
        over = f" ({usage[0]})" if usage else ""
        return case.finding(
            self,
            headline=f"evicted: the node ran low on memory{over}",
            root_cause=(
                "The kubelet evicted the pod because the node was low on memory, and this pod "
                f"used more memory than it requested{over}, so it went first. Its replacement "
                "cannot run there until the node's memory pressure clears."
                if tainted
                else "The kubelet evicted the pod because the node was low on memory, and this "
                f"pod used more memory than it requested{over}, so it went first."
            ),
            checks=(
                "kubectl describe node NODE: MemoryPressure and the pods' memory requests",
                "Compare the pod's memory use with its request and limit",
            ),
            mitigation=(
                "A human must give the pod a memory request and limit that match its use, or "
                "move it to a node with more memory; restarting it changes nothing"
            ),
            action=ActionKind.NONE,
        )


_PRESSURE_TAINT = re.compile(r"node\.kubernetes\.io/memory-pressure")
_OVER_REQUEST = re.compile(r"using \d+\w*, which exceeds its request of \d+\w*")

RULE = OomKilled()
