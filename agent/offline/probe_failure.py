"""Probe failures: the kubelet's liveness or readiness probe fails (connection refused, a
timeout, an HTTP status), and a failing liveness probe gets the container killed and
restarted. What the probe got back says why: nothing listening, too slow, or a wrong path."""

from __future__ import annotations

import dataclasses
import re

from agent.offline import kube
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

PROBES = (
    s.pattern("liveness", r"Liveness probe failed: [^\n]*", 0.25),
    s.pattern("readiness", r"Readiness probe failed: [^\n]*", 0.15),
    s.pattern("startup", r"Startup probe failed: [^\n]*", 0.2),
    s.pattern("killed", r"failed (liveness|startup) probe, will be restarted", 0.15),
)
_REFUSED = re.compile(r"connection refused|connect: connection reset", re.IGNORECASE)
_TIMEOUT = re.compile(r"context deadline exceeded|Client\.Timeout|timed out|timeout", re.I)
_NOT_FOUND = re.compile(r"statuscode: 404")
_PROBE_PORT = re.compile(r"https?://[\w.-]+:(\d{2,5})/|dial tcp [\w.-]+:(\d{2,5})")
# Where the process says it listens (uvicorn, gunicorn, Spring Boot, Node, Go, nginx...).
_LISTENS = s.pattern(
    "listens",
    r"(?i:listening|running|serving|started|bound|server is running)\b[^\n]{0,60}?"
    r"(?:port\(?s?\)?:? |:)(\d{2,5})\b",
    0.0,
)
_UNHEALTHY = re.compile(r"statuscode: 5\d\d")


def timeouts(obs: Observations) -> list[s.Hit]:
    """Probes that failed because the container answered too slowly (alive but busy), and the
    kubelet's kill that followed."""
    hits = s.observed(obs, PROBES)
    slow = [h for h in hits if _TIMEOUT.search(h.line)]
    return slow + [h for h in hits if h.pattern.name == "killed"] if slow else []


class ProbeFailure:
    name = "probe_failure"
    category = Category.CRASH_LOOP
    action = ActionKind.NONE

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        hits = s.observed(obs, PROBES)
        if not hits:
            return None
        text = " ".join(h.line for h in hits)
        case = Case()
        case.add(s.weight(hits, 0.35), *s.quotes(hits, 2))
        restarts = [c for c in kube.facts(obs).containers if (c.restarts or 0) >= 3]
        if restarts and restarts[0].restart_line is not None:
            case.add(0.1, restarts[0].restart_line.evidence())
        probe_ports = {p for m in _PROBE_PORT.finditer(text) for p in m.groups() if p}
        listens = s.observed(obs, (_LISTENS,))
        served = {m[1] for h in listens if (m := _LISTENS.regex.search(h.line))}
        wrong_port = bool(probe_ports and served and not probe_ports & served)
        if wrong_port:
            case.add(0.25, *s.quotes(listens, 1))
        if _NOT_FOUND.search(text) or wrong_port:
            what = (
                f"port {', '.join(sorted(probe_ports))} while the process listens on "
                f"{', '.join(sorted(served))}"
                if wrong_port
                else "a path the container does not serve (HTTP 404)"
            )
            case.add(0.2)
            found = case.finding(
                self,
                headline=f"the probe checks {what}",
                root_cause=f"The kubelet's probe checks {what}: the probe in the pod spec is "
                "wrong, so healthy containers are marked failed (and killed, for a liveness "
                f"probe): {hits[0].quote}",
                checks=(
                    "Compare the probe's httpGet path and port with what the app serves",
                    "kubectl rollout history: did the probe change with the last rollout?",
                ),
                mitigation="Roll back to the revision with the working probe, then fix it",
                action=ActionKind.ROLLBACK if kube.rollback_possible(ctx, obs) else self.action,
            )
            return dataclasses.replace(found, category=Category.BAD_DEPLOY)
        if _REFUSED.search(text):
            why = (
                "nothing listens on the probe's port: the process has not started (or listens "
                "on another port or address)"
            )
        elif _TIMEOUT.search(text):
            case.score *= 0.6  # too slow to answer: something else makes it slow
            why = "the container answers too slowly: it is overloaded, blocked or starved of CPU"
        elif _UNHEALTHY.search(text):
            case.score *= 0.6  # it reports itself unhealthy: its own check names the cause
            why = "the container's own health check reports it unhealthy"
        else:
            why = "the probe's command fails in the container"
        return case.finding(
            self,
            headline=f"probe failing: {hits[0].phrase}",
            root_cause=f"The kubelet's probe fails ({hits[0].quote}): {why}."
            + (
                " Failed liveness probes get the container killed and restarted."
                if restarts
                else ""
            ),
            checks=(
                "kubectl describe pod POD: the probe's settings (path, port, timeoutSeconds, "
                "initialDelaySeconds) and the events",
                "Read the container's own log at the time of the failures",
                "Compare the probe's timeout with how long the endpoint takes under load",
            ),
            mitigation="Fix what the probe reports (or the probe's settings if they are too "
            "strict); restarting only repeats it",
        )


RULE = ProbeFailure()
