"""Traffic spike: requests far above their own baseline with healthy errors per request; the
service works but is under-provisioned (often an autoscaler at its maximum)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from agent.offline import probe_failure
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, Evidence, IncidentContext, Observations

AT_CAPACITY = (
    s.pattern(
        "hpa_max",
        r"maximum replica count|TooManyReplicas|at max replicas|ScalingLimited\s+True|"
        r"(above|exceeds?|at|reached) maxReplicas",
        0.25,
    ),
    s.pattern(
        "capacity_cap",
        r"exceeds MaxCapacity|capped at \d+|reached (the )?max(imum)? (replicas|capacity|size)|"
        r"MaxSize reached|max(imum)? capacity (reached|of \d+ reached)",
        0.25,
    ),
    s.pattern(
        "quota", r"quota (above|exceeded|near)|[Rr]ate limit(ed| exceeded)|Too Many Requests", 0.1
    ),
    s.pattern("unschedulable", r"FailedScheduling|Insufficient (cpu|memory)", 0.1),
    s.pattern("rescale", r"SuccessfulRescale|New size: \d+|set desired count to \d+", 0.05),
)
_CAPACITY_ALERT = re.compile(
    r"HpaMaxedOut|max(imum)? replicas|MaxCapacity|max(imum)? capacity", re.IGNORECASE
)
_ALERT = re.compile(
    r"HpaMaxedOut|max(imum)? replicas|RequestCount|request rate|requests per|throughput|"
    r"traffic|\bload\b",
    re.IGNORECASE,
)
_REQUEST_PATH = re.compile(r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD) ([^\s"?]+)[^\s"]* HTTP/[\d.]+"')
_JSON_PATH = re.compile(r'"(?:path|uri|route|url)"\s*:\s*"([^"?]+)')
_REMOTE_ADDR = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}) \S+ \S+ \[")
_USER_AGENT = re.compile(r'" \d{3} \d+ "[^"]*" "([^"]+)"\s*$')
_CLIENT = re.compile(r'"?(?:client_id|client|api_key_name|consumer|tenant)"?\s*[:=]\s*"?([\w.-]+)')
_DOMINANT_SHARE = 0.5
_PROBE_PATHS = ("/health", "/ready", "/live", "/ping", "/metrics")


def _dominant(lines: Sequence[str], regexes: Sequence[re.Pattern[str]]) -> tuple[str, int] | None:
    """The value (path or client) behind most request lines, with the line that shows it."""
    seen: Counter[str] = Counter()
    first: dict[str, int] = {}
    for index, line in enumerate(lines):
        for regex in regexes:
            if (m := regex.search(line)) and not m[1].startswith(_PROBE_PATHS):
                seen[m[1]] += 1
                first.setdefault(m[1], index)
                break
    if not seen:
        return None
    value, count = seen.most_common(1)[0]
    if count < 2 or count < _DOMINANT_SHARE * sum(seen.values()):
        return None
    return value, first[value]


def _dominant_evidence(lines: Sequence[str]) -> tuple[list[str], list[Evidence]]:
    """What most of the traffic is ('GET /deals/x', 'client partner-acme') and lines showing it."""
    found: list[str] = []
    evidence: list[Evidence] = []
    for label, regexes in (
        ("path", (_REQUEST_PATH, _JSON_PATH)),
        ("client", (_CLIENT, _REMOTE_ADDR)),
        ("user agent", (_USER_AGENT,)),
    ):
        if result := _dominant(lines, regexes):
            value, index = result
            start = lines[index].find(value)
            found.append(f"{label} {value}")
            evidence.append(
                Evidence(tool="logs", quote=s.clip(lines[index], start, start + len(value)))
            )
    return found, evidence


class TrafficSpike:
    name = "traffic_spike"
    category = Category.TRAFFIC_SPIKE
    action = ActionKind.SCALE_UP

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        requests = s.requests(obs)
        capacity = s.find(obs.logs, AT_CAPACITY)
        surge = requests is not None and requests.ratio >= 2.0
        capped = s.alert_hit(ctx, _CAPACITY_ALERT)
        busy = probe_failure.timeouts(obs)
        loaded = s.alert_hit(ctx, _ALERT)
        overloaded = bool(busy) and (surge or loaded is not None)
        if not (surge or capped or overloaded or any(h.pattern.weight >= 0.25 for h in capacity)):
            return None
        case = Case()
        if requests is not None and surge:
            case.add(0.45 if requests.ratio >= 3 else 0.3, requests.evidence)
        if overloaded:  # alive but too slow to answer its probe while load is high
            case.add(0.3, *s.quotes(busy, 2))
        case.add(s.weight(capacity, 0.35), *s.quotes(capacity, 1))
        drivers, driver_evidence = _dominant_evidence(obs.logs)
        case.cite(driver_evidence)
        case.cite(s.quotes(capacity, 2)[1:])
        errors = s.metric(obs, s.OWN_ERRORS)
        if errors is not None:
            if errors.current >= 0.2:
                case.score *= 0.6  # a fifth of requests failing is breakage, not just load
            elif surge:
                case.add(
                    0.05,
                    Evidence(tool="metrics", quote=f"{errors.describe()}: most requests succeed"),
                )
        replicas = s.metric(obs, s.REPLICAS)
        if replicas is not None and replicas.current > replicas.baseline:
            case.add(0.05, replicas.evidence)
        cpu = s.metric(obs, s.CPU)
        if cpu is not None and s.saturated(cpu, 85):
            case.add(0.05, cpu.evidence)
        alert = capped or s.alert_hit(ctx, _ALERT)
        case.add(0.2 if capped else 0.1 if alert else 0.0, alert)
        case.cite(s.quotes(capacity, 3)[2:])

        load = (
            requests.describe()
            if requests is not None and surge
            else "pods too slow to answer their probes under load"
            if overloaded
            else "load above capacity"
        )
        driver = f" Most of it is {' and '.join(drivers)}." if drivers else ""
        limit = f" Scaling is capped: {capacity[0].quote}." if capacity else ""
        return case.finding(
            self,
            headline=f"traffic spike ({load})" + (f", driven by {drivers[0]}" if drivers else ""),
            root_cause=(
                f"Demand is far above its normal level ({load}) and the service, healthy per "
                f"request, is under-provisioned for it.{driver}{limit}"
            ),
            checks=(
                "Confirm the extra traffic is legitimate (campaign, partner batch) and not abuse",
                "Check the autoscaler's maximum and whether the cluster has room for more replicas",
                "Watch downstream capacity (database, caches) before adding replicas",
            ),
            mitigation=(
                "Scale up (raise the autoscaler maximum or add replicas); rate-limit or shed "
                "the dominant client or route if the traffic is not wanted"
            ),
        )


RULE = TrafficSpike()
