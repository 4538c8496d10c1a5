"""Dependency down: calls to a named upstream (API, carrier, cache, broker, database host) time
out or fail with 5xx while the service's own resources are fine."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from agent.offline import hosts
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, Evidence, IncidentContext, Observations

FAILURES = (
    s.pattern(
        "deadline", r"context deadline exceeded|DEADLINE_EXCEEDED|Client\.Timeout exceeded", 0.2
    ),
    s.pattern(
        "nginx_upstream",
        r"upstream timed out|upstream prematurely closed|no live upstreams|"
        r"connect\(\) failed .* while connecting to upstream|upstream connect error|"
        r"no healthy upstream",
        0.25,
    ),
    s.pattern(
        "http_5xx", r"50[234] Service Unavailable|502 Bad Gateway|504 Gateway Time-?out", 0.2
    ),
    s.pattern(
        "status_5xx",
        r"\"?(status|status_code|code)\"?\s*[:=]\s*\"?50[234]\b",
        0.15,
        ignore_case=True,
    ),
    s.pattern(
        "breaker",
        r"circuit( breaker)?[^\n]{0,60}\bopen\b|CircuitBreakerOpen",
        0.2,
        ignore_case=True,
    ),
    s.pattern(
        "refused",
        r"Connection refused|ECONNREFUSED|connection reset by peer|ECONNRESET|"
        r"EHOSTUNREACH|No route to host|socket hang up",
        0.2,
        ignore_case=True,
    ),
    s.pattern(
        "read_timeout",
        r"Read timed out|ReadTimeout|SocketTimeoutException|ETIMEDOUT|i/o timeout|"
        r"Connection timed out|ConnectTimeout|connection timeout",
        0.2,
        ignore_case=True,
    ),
    s.pattern(
        "dns",
        r"no such host|Name or service not known|ENOTFOUND|UnknownHostException|"
        r"Temporary failure in name resolution|EAI_AGAIN|Could not resolve host|"
        r"Failed to resolve '|NameResolutionError|could not translate host name",
        0.2,
        ignore_case=True,
    ),
    s.pattern(
        "db_connect",
        r"Can't connect to MySQL server|Lost connection to MySQL server|"
        r"could not connect to server|connection to server at [^\n]{0,80} failed|"
        r"Failed to connect to (the )?(database|db)\b[^\n]{0,40}|Communications link failure|"
        r"Unable to connect to (the )?database|Database connection failed[^\n]{0,30}",
        0.3,
        ignore_case=True,
    ),
    s.pattern(
        "mongo",
        r"Query failed with error code \d+ and error message '[^']*' on server [\w.-]+:\d+|"
        r"MongoServerSelectionError|MongoNetworkError|MongoTimeoutException|"
        r"MongoSocket\w*Exception|MongoQueryException|MongoServerError",
        0.25,
    ),
    s.pattern(
        "unavailable",
        r"\b(database|db|server|backend|upstream|host|service|cluster)\b[^\n]{0,30}"
        r"\b(unavailable|unreachable|is down)\b",
        0.15,
        ignore_case=True,
    ),
    s.pattern(
        "gateway_status", r'" 50[234] \d+ ', 0.1
    ),  # a proxy's access log: the upstream failed
    s.pattern("retries", r"Max retries exceeded with url|retries exhausted|giving up after", 0.1),
    s.pattern("grpc_unavailable", r"\bUNAVAILABLE\b|code = Unavailable", 0.15),
    s.pattern(
        "broker", r"LEADER_NOT_AVAILABLE|NoBrokersAvailable|Broker[^\n]{0,30}not available", 0.2
    ),
    s.pattern(
        "cache_down",
        r"Could not connect to Redis|Error connecting to Redis|Redis connection lost",
        0.2,
    ),
    s.pattern("registry", r"pull access denied|failed to resolve reference|ErrImagePull", 0.1),
)
_PROBE = re.compile(r"(Liveness|Readiness|Startup) probe failed")
_NAME_LABELS = ("upstream", "dependency", "peer_service", "destination_service", "remote_service")
_URL_HOST = re.compile(r"https?://([\w.-]+)|host='([\w.-]+)'")
_ADDRESS = re.compile(
    r"(?:dial tcp|connect to|connecting to|host=|\bat|ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH) "
    r"([\w][\w.-]*):(\d{2,5})\b"
)
_WELL_KNOWN_PORTS = {
    "5432": "postgres",
    "3306": "mysql",
    "6379": "redis",
    "11211": "memcached",
    "9092": "kafka",
    "5672": "rabbitmq",
    "27017": "mongodb",
    "9200": "elasticsearch",
    "2181": "zookeeper",
}
_NAMED = re.compile(
    r'"?(?:carrier|provider|dependency|upstream|peer|remote|target|backend)"?\s*[:=]\s*"([\w.-]+)"'
)
_BREAKER_NAME = re.compile(r'"?name"?\s*[:=]\s*"([\w.-]+)"')
# A server the failing client names: MongoDB's "on server", MySQL's "server on", drivers' "tried".
_SERVER = re.compile(
    r"on server '?([\w.-]+(?::\d+)?)|MySQL server on '([\w.-]+)'|\(tried: ([\w.-]+:\d+)\)|"
    r"connection to server at \"([\w.-]+)\""
)
# How the outage shows in this service: its own crash, or a slow page/request it logs.
SYMPTOMS = (
    s.pattern(
        "own_crash",
        r"^\s*(TypeError|ReferenceError|AttributeError|KeyError|NullPointerException|"
        r"panic): [^\n]+",
        0.0,
    ),
    s.pattern(
        "slow_response",
        r"\b(rendered|completed|responded|served|finished|took)\b[^\n]{0,30}"
        r"\b\d{2,}(\.\d+)? ?(s|sec|seconds)\b",
        0.05,
        ignore_case=True,
    ),
)
_ALERT = re.compile(
    r"upstream|dependency|downstream|third[- ]party|external|timeout", re.IGNORECASE
)


def _named_in_output(obs: Observations, hits: Sequence[s.Hit]) -> str | None:
    """The dependency most failure lines name (a JSON field, a URL host, a host:port), in the
    logs or in the Kubernetes output (previous-container logs, events)."""
    failing = [
        lines[i]
        for tool, lines in (("logs", obs.logs), ("kubernetes", obs.kubernetes))
        for i in sorted(
            {i for h in hits if h.tool == tool for i in s.lines_matching(lines, h.pattern)}
        )
    ]
    names: Counter[str] = Counter()
    for line in (x for x in failing if not _PROBE.search(x)):
        if m := _SERVER.search(line) or _NAMED.search(line) or _URL_HOST.search(line):
            names[next(g for g in m.groups() if g)] += 1
        elif m := _ADDRESS.search(line):
            kind = _WELL_KNOWN_PORTS.get(m[2])
            names[f"{kind} at {m[1]}:{m[2]}" if kind else f"{m[1]}:{m[2]}"] += 1
        elif m := _BREAKER_NAME.search(line):
            names[m[1]] += 1
    return names.most_common(1)[0][0] if names else None


def _short(name: str) -> str:
    """api.parcelhub.io and parcelhub are one dependency; compare on the distinctive part."""
    parts = [
        p for p in name.lower().split(".") if p not in ("api", "www", "com", "io", "net", "org")
    ]
    return max(parts, key=len) if parts else name.lower()


class DependencyDown:
    name = "dependency_down"
    category = Category.DEPENDENCY_DOWN
    action = ActionKind.NONE

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        # A probe is the kubelet calling the pod itself: its timeouts name no dependency.
        hits = [h for h in s.observed(obs, FAILURES) if not _PROBE.search(h.line)]
        failing_deps = [
            m
            for m in s.metrics_named(obs, s.DEPENDENCY_ERRORS)
            if not s.OWN_ERRORS.search(m.name) and m.stepped(3.0, 0.05)
        ]
        if not (hits or failing_deps):
            return None
        case = Case()
        metric_name = None
        if failing_deps:
            worst = max(failing_deps, key=lambda m: m.current)
            named = s.DEPENDENCY_ERRORS.search(worst.name)
            metric_name = named["dep"] if named else None
            case.add(0.35, worst.evidence)
        case.add(s.weight(hits, 0.45), *s.quotes(hits, 3))
        label = s.alert_label(ctx, *_NAME_LABELS)
        name = (
            label
            or metric_name
            or _named_in_output(obs, hits)
            or hosts.most_named(hosts.unresolved(obs))
        )
        case.score += 0.1 if name else 0.0  # the failures point at one dependency
        healthy = [
            m
            for m in s.metrics_named(obs, s.DEPENDENCY_ERRORS)
            if not s.OWN_ERRORS.search(m.name) and m not in failing_deps and m.current < 0.05
        ]
        if failing_deps and healthy:
            other = healthy[0]
            case.cite(
                [Evidence(tool="metrics", quote=f"{other.describe()}: other dependencies are fine")]
            )
        own = s.metric(obs, s.OWN_ERRORS)
        if own is not None and own.stepped(3.0, 0.01):
            case.cite([own.evidence])
        cpu, memory, requests = s.metric(obs, s.CPU), s.metric(obs, s.MEMORY), s.requests(obs)
        busy = requests is not None and requests.ratio >= 2
        if s.saturated(cpu, 85) or s.saturated(memory, 90) or busy:
            case.score *= 0.4  # the service itself is overloaded: its upstream calls time out too
        elif idle := next((m for m in (cpu, memory) if m is not None), None):
            case.add(
                0.05,
                Evidence(tool="metrics", quote=f"{idle.describe()}: the service itself is fine"),
            )
        if obs.health is not None and name and _short(name) in obs.health.body.lower():
            case.add(0.05, s.health_evidence(obs))
        issue = next(
            (i for i in obs.errors if name and _short(name) in i.title.lower()),
            None,
        )
        case.add(0.05 if issue else 0.0, s.issue_evidence(issue) if issue else None)
        alert = s.alert_hit(ctx, _ALERT)
        case.add(0.05 if alert else 0.0, alert)
        symptoms = s.observed(obs, SYMPTOMS)
        case.add(s.weight(symptoms, 0.05), *s.quotes(symptoms, 2))

        who = name or "an upstream dependency"
        kinds = ", ".join(dict.fromkeys(h.text for h in hits[:3]))
        return case.finding(
            self,
            headline=f"{name or 'an upstream dependency'} is failing"
            + (f" ({kinds})" if kinds else ""),
            root_cause=(
                f"Calls to {who} fail"
                + (f" ({kinds})" if kinds else "")
                + " while the service's own CPU and memory are normal, so the outage is "
                "upstream and this service only passes it on."
            ),
            checks=(
                f"Check {who}'s status page or its own dashboards and on-call",
                f"Call {who} directly from the service's network (curl with a timeout) to see "
                "whether it is down, slow or refusing this client",
                "Confirm retries and circuit breakers are limiting the damage, and that timeouts "
                "are shorter than the callers' timeouts",
            ),
            mitigation=(
                f"No restart or rollback fixes an upstream outage: fail over or degrade "
                f"gracefully (cached answers, skip {who}) and escalate to its owners"
            ),
        )


RULE = DependencyDown()
