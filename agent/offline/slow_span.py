"""Slow database span: in a trace (Tempo, Jaeger, any OpenTelemetry tree printed with span
durations), one database span (db.system / db.statement) takes most of the request's time:
the query is what makes requests slow, whichever service sent it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.offline import kube, structured
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

_SPAN = re.compile(
    r"^(?P<prefix>[\s│├└─|`+\\-]*)(?P<name>[^\s│├└─(][^()]*?) \((?P<service>[\w.-]+)\)"
    r"\s+-\s+(?P<ms>\d+(?:\.\d+)?)\s*ms\b"
)
_ATTRIBUTE = re.compile(
    r"\b(?P<key>db\.[a-z_.]+|peer\.service|net\.peer\.name):\s*(?P<value>\S.*)$"
)
_DB_NAME = re.compile(r"postgres|mysql|mariadb|\bsql\b|mongo|redis|cassandra|\bdb\b|query", re.I)
_ALERT = re.compile(r"latency|slow|duration|p9\d", re.IGNORECASE)
MIN_SHARE = 0.5  # the span holds at least half the request's time
MIN_MS = 500.0


@dataclass(slots=True)
class Span:
    line: kube.Line
    depth: int
    name: str
    service: str
    ms: float
    attributes: dict[str, kube.Line] = field(default_factory=dict)
    parent: Span | None = None

    @property
    def is_db(self) -> bool:
        return (
            "db.system" in self.attributes
            or "db.statement" in self.attributes
            or bool(_DB_NAME.search(self.name))
        )


def spans(obs: Observations) -> list[Span]:
    found: list[Span] = []
    stack: list[Span] = []
    for line in kube.lines_of(obs):
        if m := _SPAN.match(line.text):
            depth = len(m["prefix"])
            while stack and stack[-1].depth >= depth:
                stack.pop()
            span = Span(line, depth, m["name"].strip(), m["service"], float(m["ms"]))
            span.parent = stack[-1] if stack else None
            stack.append(span)
            found.append(span)
        elif stack and (a := _ATTRIBUTE.search(line.text)):
            stack[-1].attributes.setdefault(a["key"], line)
    return found


def _root(span: Span) -> Span:
    while span.parent is not None:
        span = span.parent
    return span


class SlowSpan:
    name = "slow_span"
    category = Category.DB_LATENCY
    action = ActionKind.NONE

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        db = [
            x for x in spans(obs) if x.is_db and x.ms >= MIN_MS and x.ms >= MIN_SHARE * _root(x).ms
        ]
        if not db:
            return None
        worst = max(db, key=lambda x: x.ms / _root(x).ms)
        root = _root(worst)
        share = worst.ms / root.ms
        case = Case()
        case.add(0.45 + (0.15 if share >= 0.75 else 0.0), worst.line.evidence())
        statement = worst.attributes.get("db.statement")
        case.add(0.1 if statement else 0.0, statement.evidence() if statement else None)
        timing = worst.attributes.get("db.execution_time_ms")
        case.cite([timing.evidence()] if timing else [])
        caller = worst.parent if worst.parent is not root else None
        case.cite([caller.line.evidence()] if caller else [])
        case.add(0.05 if len(db) > 1 else 0.0, *(x.line.evidence() for x in db[1:2]))
        slow = [
            (ms, r) for r in structured.records(obs.logs) if (ms := r.latency_ms()) and ms >= MIN_MS
        ]
        if slow:
            case.cite([max(slow, key=lambda pair: pair[0])[1].evidence])
        alert = s.alert_hit(ctx, _ALERT)
        case.add(0.05 if alert else 0.0, alert)

        sql = statement.text.split(":", 1)[1].strip() if statement else worst.name
        return case.finding(
            self,
            headline=f"slow database query in {worst.service} ({s.fmt(worst.ms)} ms: {sql[:80]})",
            root_cause=(
                f"{share:.0%} of the {s.fmt(root.ms)} ms request is one database call in "
                f"{worst.service}: {worst.name} took {s.fmt(worst.ms)} ms ({sql}). The query is "
                "slow, not the services around it."
            ),
            checks=(
                f"EXPLAIN ANALYZE the statement ({sql[:120]}) and look for a sequential scan "
                "or a missing index",
                "Check the database's load, locks and slow-query log at the same time",
                "Check whether the table grew or its statistics are stale",
            ),
            mitigation="Fix the query or add the missing index; no restart or rollback helps",
        )


RULE = SlowSpan()
