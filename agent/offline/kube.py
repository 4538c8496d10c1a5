"""Kubernetes state read from what kubectl and the API print (describe, events, get pods):
container states with reasons and exit codes, restarts, limits, events, the workload's kind
and rollout history, NetworkPolicies and ConfigMap values. Shared by the offline rules."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from agent.offline import signals as s
from agent.types import Evidence, IncidentContext, Observations


@dataclass(frozen=True, slots=True)
class Line:
    """One line of tool output and where it came from, so it can be quoted exactly."""

    index: int
    text: str
    tool: str

    def evidence(self, start: int = 0, end: int = 0) -> Evidence:
        return Evidence(tool=self.tool, quote=s.clip(self.text, start, end))


@dataclass(slots=True)
class StateSlot:
    """`State:` or `Last State:` of a container: Waiting/Running/Terminated with its reason."""

    phase: str
    line: Line
    reason: str | None = None
    reason_line: Line | None = None
    exit_code: int | None = None
    exit_line: Line | None = None
    message: Line | None = None
    started: str | None = None
    finished: str | None = None


@dataclass(slots=True)
class Container:
    name: str
    init: bool = False
    state: StateSlot | None = None
    last: StateSlot | None = None
    restarts: int | None = None
    restart_line: Line | None = None
    ready: bool | None = None
    limits: dict[str, Line] = field(default_factory=dict)
    requests: dict[str, Line] = field(default_factory=dict)
    command: list[Line] = field(default_factory=list)

    def slots(self) -> Iterator[StateSlot]:
        yield from (slot for slot in (self.state, self.last) if slot is not None)

    def reasons(self) -> set[str]:
        return {slot.reason for slot in self.slots() if slot.reason}


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str
    line: Line

    def evidence(self) -> Evidence:
        at = self.line.text.find(self.reason)
        return self.line.evidence(max(0, at), len(self.line.text))


@dataclass(slots=True)
class Workload:
    """What runs the pods, as far as the output shows it."""

    job: bool = False
    bare_pod: bool = False
    replicaset: bool = False
    revision: int | None = None
    revision_line: Line | None = None
    old_replicasets: bool | None = None
    old_line: Line | None = None

    @property
    def can_roll_back(self) -> bool | None:
        """False when there is no earlier revision to go back to; None when unknown."""
        if self.job or self.bare_pod:
            return False
        if self.old_replicasets is not None:
            return self.old_replicasets
        if self.revision is not None:
            return self.revision > 1
        return True if self.replicaset else None

    @property
    def restartable(self) -> bool:
        """A Job's failed pods are not brought back by restarting a Deployment."""
        return not (self.job or self.bare_pod)


@dataclass(slots=True)
class Facts:
    containers: list[Container] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    statuses: list[tuple[str, Line]] = field(default_factory=list)  # `kubectl get pods` STATUS
    workload: Workload = field(default_factory=Workload)
    network_policies: list[Line] = field(default_factory=list)
    config: list[tuple[str, str, Line]] = field(default_factory=list)  # ConfigMap/env KEY: value

    def warnings(self, *reasons: str) -> list[Event]:
        return [e for e in self.events if e.reason in reasons]

    def status_lines(self, regex: re.Pattern[str]) -> list[Line]:
        return [line for status, line in self.statuses if regex.search(status)]


_KEY = re.compile(
    r"^(?P<indent>\s*)(?P<key>State|Last State|Reason|Exit Code|Restart Count|Message|Ready|"
    r"Limits|Requests|Command|Args|Started|Finished|Image|Port|Host Port|Environment|Mounts|"
    r"Container ID|Image ID|Liveness|Readiness|Startup|Signal|Environment Variables from):"
    r"\s*(?P<value>.*)$"
)
_SECTION = re.compile(r"^\s{0,2}(?P<name>Init Containers|Containers):\s*$")
_END_SECTION = re.compile(
    r"^\s{0,2}(Conditions|Volumes|Events|QoS Class|Node-Selectors|Tolerations|Volume Claims):"
)
_CONTAINER = re.compile(r"^\s{1,5}(?P<name>[a-z0-9][a-z0-9.-]*):\s*$")
_RESOURCE = re.compile(r"^\s+(?P<name>cpu|memory|ephemeral-storage|nvidia\.com/gpu):\s+(\S+)")
_DESCRIBE_EVENT = re.compile(
    r"^\s*(?P<type>Normal|Warning)\s+(?P<reason>[A-Z]\w+)\s+(?:<unknown>|\S+(?: \(x\d+ over \S+\))?)"
    r"\s+(?:[\w.-]+(?:, [\w.-]+)?)\s{2,}(?P<message>\S.*)$"
)
# `kubectl get events` rows; with `-A` (or `--all-namespaces`) a NAMESPACE column comes first.
_GET_EVENT = re.compile(
    r"^\s*(?:[a-z0-9][\w.-]*\s+)?(?:\S+(?: \(x\d+ over \S+\))?\s+)?"
    r"(?P<type>Normal|Warning)\s+(?P<reason>[A-Z]\w+)\s+"
    r"(?:\w+/[\w.-]+)\s+(?P<message>\S.*)$"
)
_POD_ROW = re.compile(r"\s(?P<ready>\d+/\d+)\s+(?P<status>[A-Z][\w:]+)\s+\d+(?:\s\([^)]*\))?\s")
_CONTROLLED = re.compile(r"^\s*Controlled By:\s+(?P<kind>\w+)/")
_POD_NAME = re.compile(r"^Name:\s+(?P<name>\S+)\s*$")
_RS_HASH = re.compile(r"-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_JOB = re.compile(r"^\s*(Backoff Limit|Pods Statuses|Completions|Parallelism):\s")
_REVISION = re.compile(r"deployment\.kubernetes\.io/revision:\s*(\d+)")
_OLD_RS = re.compile(r"^\s*OldReplicaSets:\s*(?P<value>.*)$")
_POLICY = re.compile(
    r"NetworkPolicy/(?P<name>[\w.-]+)|^\s*kind:\s*NetworkPolicy\b|"
    r"isolated for egress connectivity"
)
_CONFIG_ENTRY = re.compile(r"^\s+(?P<key>[A-Z][A-Z0-9_]{2,}):\s+(?P<value>\S.*)$")
_ENV_ENTRY = re.compile(r"^\s+(?P<key>[A-Z][A-Z0-9_]{2,})=(?P<value>\S+)")


def lines_of(obs: Observations) -> list[Line]:
    """Kubernetes output first (the tool made for it), then the logs, which may carry kubectl
    output pasted by a person or a runbook."""
    return [Line(i, t, "kubernetes") for i, t in enumerate(obs.kubernetes)] + [
        Line(i, t, "logs") for i, t in enumerate(obs.logs)
    ]


def facts(obs: Observations) -> Facts:
    return _parse(tuple(obs.kubernetes), tuple(obs.logs))


@lru_cache(maxsize=8)  # every rule of one diagnosis reads the same facts
def _parse(kubernetes: tuple[str, ...], logs: tuple[str, ...]) -> Facts:
    found = Facts()
    for tool, lines in (("kubernetes", kubernetes), ("logs", logs)):
        _read(found, [Line(i, t, tool) for i, t in enumerate(lines)])
    return found


def _read(found: Facts, lines: Sequence[Line]) -> None:
    section: str | None = None
    container: Container | None = None
    slot: StateSlot | None = None
    block: str | None = None  # Limits | Requests | Command | Args
    pod_name: str | None = None
    controlled = False
    for line in lines:
        text = line.text
        if m := _SECTION.match(text):
            section, container, slot, block = m["name"], None, None, None
            continue
        if _END_SECTION.match(text):
            section, container, slot, block = None, None, None, None
        if m := _POD_NAME.match(text):
            pod_name, controlled = m["name"], False
        if m := _CONTROLLED.match(text):
            controlled = True
            found.workload.replicaset |= m["kind"] == "ReplicaSet"
            found.workload.job |= m["kind"] == "Job"
        if _JOB.match(text):
            found.workload.job = True
        if m := _REVISION.search(text):
            found.workload.revision, found.workload.revision_line = int(m[1]), line
        if m := _OLD_RS.match(text):
            value = m["value"].strip()
            found.workload.old_replicasets = bool(value) and value != "<none>"
            found.workload.old_line = line
        if _POLICY.search(text):
            found.network_policies.append(line)
        if m := _POD_ROW.search(text):
            found.statuses.append((m["status"], line))
        if m := _DESCRIBE_EVENT.match(text) or _GET_EVENT.match(text):
            found.events.append(Event(m["type"], m["reason"], m["message"].strip(), line))
            continue
        key = _KEY.match(text)
        if section and (m := _CONTAINER.match(text)) and not key:
            container = Container(m["name"], init=section == "Init Containers")
            found.containers.append(container)
            slot, block = None, None
            continue
        if key is None:
            if block in ("Limits", "Requests") and container and (r := _RESOURCE.match(text)):
                target = container.limits if block == "Limits" else container.requests
                target[r["name"]] = line
            elif block in ("Command", "Args") and container and text.strip():
                container.command.append(line)
            elif m := _CONFIG_ENTRY.match(text) or _ENV_ENTRY.match(text):
                found.config.append((m["key"], m["value"].strip(), line))
            continue
        name, value = key["key"], key["value"].strip()
        if container is None and name in ("State", "Last State", "Restart Count", "Command"):
            container = Container("")
            found.containers.append(container)
        if container is None:
            continue
        block = name if name in ("Limits", "Requests", "Command", "Args") else None
        if name in ("Command", "Args") and value:
            container.command.append(line)
        if name == "State":
            slot = container.state = StateSlot(value, line)
        elif name == "Last State":
            slot = container.last = StateSlot(value, line)
        elif name == "Reason" and slot is not None:
            slot.reason, slot.reason_line = value, line
        elif name == "Exit Code" and slot is not None and value.lstrip("-").isdigit():
            slot.exit_code, slot.exit_line = int(value), line
        elif name == "Message" and slot is not None:
            slot.message = line
        elif name == "Started" and slot is not None:
            slot.started = value
        elif name == "Finished" and slot is not None:
            slot.finished = value
        elif name == "Restart Count" and value.isdigit():
            container.restarts, container.restart_line = int(value), line
        elif name == "Ready":
            container.ready = value == "True"
    if pod_name and not controlled and not _RS_HASH.search(pod_name) and found.containers:
        found.workload.bare_pod = not found.workload.job


def workload(ctx: IncidentContext, obs: Observations) -> Workload:
    """The workload as the output shows it, with the alert's word for a Job (kube-state-metrics
    labels a failed Job's alert with `job_name`)."""
    seen = facts(obs).workload
    if s.alert_label(ctx, "job_name") or re.search(r"KubeJob", ctx.title + str(ctx.labels)):
        seen = replace(seen, job=True)
    return seen


def rollback_possible(ctx: IncidentContext, obs: Observations) -> bool:
    """An earlier revision exists: the output shows one, or (where it shows no history) a
    deploy recorded in the last hour replaced one."""
    back = workload(ctx, obs).can_roll_back
    return back if back is not None else s.recent_deploy(obs) is not None


_TOP_ROW = re.compile(r"^(?P<name>[a-z0-9][\w.-]*)\s+(?P<cpu>\d+)m\s+\d+[KMG]i\s*$")
_AT_LIMIT = 0.9


def _millicores(quantity: str) -> float | None:
    """A CPU quantity (`500m`, `2`, `1.5`) in millicores."""
    try:
        return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000
    except ValueError:
        return None


def cpu_at_limit(obs: Observations) -> tuple[Line, Line] | None:
    """(`kubectl top pod` row, `cpu:` limit line) when a pod uses 90 % or more of its CPU limit."""
    limits = [c.limits["cpu"] for c in facts(obs).containers if "cpu" in c.limits]
    if not limits:
        return None
    limit_line = limits[0]
    limit = _millicores(limit_line.text.split(":", 1)[1].strip())
    for line in lines_of(obs):
        if (
            (m := _TOP_ROW.match(line.text.strip()))
            and limit
            and int(m["cpu"]) >= _AT_LIMIT * limit
        ):
            return line, limit_line
    return None


def reason_lines(f: Facts, *reasons: str) -> list[Line]:
    """`Reason: X` lines of container states, and `get pods` rows, for any of `reasons`."""
    found = [
        slot.reason_line
        for c in f.containers
        for slot in c.slots()
        if slot.reason in reasons and slot.reason_line is not None
    ]
    found += [line for status, line in f.statuses if status.split(":")[-1] in reasons]
    return found
