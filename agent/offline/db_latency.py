"""Database latency: lock waits, deadlocks, statement timeouts or slow queries make requests
slow while the service itself is idle (PostgreSQL, MySQL)."""

from __future__ import annotations

import re

from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, Evidence, IncidentContext, Observations

LOCKS = (
    s.pattern("pg_lock_wait", r"still waiting for \w*Lock", 0.35),
    s.pattern("deadlock", r"deadlock detected|Deadlock found when trying to get lock", 0.35),
    s.pattern("mysql_lock_wait", r"Lock wait timeout exceeded", 0.35),
    s.pattern(
        "statement_timeout",
        r"canceling statement due to (statement|lock) timeout|QueryCanceled|"
        r"Query execution was interrupted|ORA-01013",
        0.3,
    ),
    s.pattern("idle_in_transaction", r"idle in transaction", 0.25),
    s.pattern(
        "lock_holder",
        r"Process holding the lock|blocking (pid|query|session)",
        0.15,
        ignore_case=True,
    ),
    s.pattern("lock_not_available", r"could not obtain lock|LockNotAvailable|lock timeout", 0.2),
)
SLOW_QUERIES = (
    s.pattern("pg_slow", r"duration: \d{4,}(\.\d+)? ms\s+(statement|execute)", 0.15),
    s.pattern("mysql_slow", r"# Query_time: \d+", 0.15),
    s.pattern("slow_query", r"slow query", 0.15, ignore_case=True),
)
# An application's own report of how long a database call took ("Database call completed in
# 10.01 seconds", "query took 2300ms", "SQL statement executed in 3.2 s").
_TIMED_CALL = re.compile(
    r"\b(?:database|db|sql|query|queries|stored procedure|statement)\b[^\n]{0,60}?"
    r"\b(?:took|completed in|finished in|executed in|returned in|ran for)\s+"
    r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|milliseconds?|s|secs?|seconds?)\b",
    re.IGNORECASE,
)
# The statement a slow call ran, where the application logs it before the call.
_STATEMENT = re.compile(
    r"(?:stored procedure|procedure|statement|query|sql)\s*[:=]\s*\S+|"
    r"\b(?:SELECT|UPDATE|INSERT|DELETE|CALL|EXEC(?:UTE)?)\s+\S+",
    re.IGNORECASE,
)
SLOW_CALL_MS = 1000.0
_STATEMENT_REACH = 8  # lines before a slow call where its statement may be logged


def _ms(match: re.Match[str]) -> float:
    value = float(match["n"])
    return value if match["unit"].lower().startswith("m") else value * 1000


def slow_calls(obs: Observations) -> list[tuple[float, int]]:
    """(milliseconds, log line index) of database calls the service reports as slow."""
    return [
        (ms, i)
        for i, line in enumerate(obs.logs)
        if (m := _TIMED_CALL.search(line)) and (ms := _ms(m)) >= SLOW_CALL_MS
    ]


def _statement_before(lines: list[str], index: int) -> int | None:
    for i in range(index - 1, max(-1, index - _STATEMENT_REACH), -1):
        if _STATEMENT.search(lines[i]):
            return i
    return None


_DB_METRIC = re.compile(r"lock|deadlock|blocked|(db|rds|query|database)_\w*(latency|duration|time)")
_ALERT = re.compile(r"latency|slow|lock|duration", re.IGNORECASE)


class DbLatency:
    name = "db_latency"
    category = Category.DB_LATENCY
    action = ActionKind.NONE

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        locks = s.observed(obs, LOCKS)
        slow = s.observed(obs, SLOW_QUERIES)
        db_metrics = [m for m in s.metrics_named(obs, _DB_METRIC) if m.stepped(2.0)]
        timed = slow_calls(obs)
        if not (locks or slow or db_metrics or len(timed) >= 2):
            return None
        case = Case()
        case.add(s.weight(locks, 0.6), *s.quotes(locks, 3))
        case.add(s.weight(slow, 0.2 if locks else 0.3), *s.quotes(slow, 1))
        statement: int | None = None
        if len(timed) >= 2:
            _, worst = max(timed)
            statement = _statement_before(obs.logs, worst)
            case.add(
                0.2 if locks or slow else 0.4,
                Evidence(tool="logs", quote=s.clip(obs.logs[worst])),
                None
                if statement is None
                else Evidence(tool="logs", quote=s.clip(obs.logs[statement])),
            )
        case.add(0.15 if db_metrics else 0.0, *(m.evidence for m in db_metrics[:1]))
        latency = s.latency(obs)
        requests = s.requests(obs)
        if latency is not None and latency.stepped(3.0):
            flat = requests is None or requests.ratio < 1.5
            case.add(0.1 if flat else 0.0, latency.evidence)
        cpu = s.metric(obs, s.CPU)
        if s.saturated(cpu):
            case.score *= 0.7  # slow everything with a pegged CPU is not the database's doing
        alert = s.alert_hit(ctx, _ALERT)
        case.add(0.05 if alert else 0.0, alert)
        case.cite(s.quotes(locks, 4)[3:])

        lock = bool(locks)
        what = (
            locks[0].text
            if lock
            else slow[0].text
            if slow
            else _timed_summary(obs.logs, timed, statement)
            if len(timed) >= 2
            else db_metrics[0].describe()
        )
        holder = next(
            (h for h in locks if h.pattern.name in ("idle_in_transaction", "lock_holder")), None
        )
        held = f" The lock holder: {holder.quote}." if holder else ""
        return case.finding(
            self,
            headline=("requests blocked on database locks" if lock else "slow database queries")
            + f" ({what})",
            root_cause=(
                (
                    "Requests wait on row or table locks held by another transaction, so "
                    f"queries hit their timeouts ({what}).{held}"
                )
                if lock
                else f"The database answers slowly ({what}), so requests queue behind queries."
            ),
            checks=(
                "List blocking sessions: SELECT pid, state, xact_start, query "
                "FROM pg_stat_activity "
                "WHERE state <> 'idle' ORDER BY xact_start (MySQL: SHOW ENGINE INNODB STATUS)",
                "Find who holds the lock (pg_blocking_pids) and what it is doing",
                "Check slow-query logs and EXPLAIN the slowest statement",
            ),
            mitigation=(
                "A human should end the blocking transaction (pg_terminate_backend on the holder) "
                "after checking what it was doing; restarting the service would not release it"
                if lock
                else "Find and fix the slow query (missing index, plan change); no restart helps"
            ),
        )


def _timed_summary(lines: list[str], timed: list[tuple[float, int]], statement: int | None) -> str:
    """'12 database calls took 5-10 s: Fetching data using stored procedure: sp_X'."""
    low, high = min(ms for ms, _ in timed) / 1000, max(ms for ms, _ in timed) / 1000
    text = f"{len(timed)} database calls took {s.fmt(low)}-{s.fmt(high)} s"
    if statement is not None:
        m = _STATEMENT.search(lines[statement])
        text += f", running {m[0] if m else lines[statement].strip()}"
    return text


RULE = DbLatency()
