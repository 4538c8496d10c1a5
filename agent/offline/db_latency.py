"""Database latency: lock waits, deadlocks, statement timeouts or slow queries make requests
slow while the service itself is idle (PostgreSQL, MySQL)."""

from __future__ import annotations

import re

from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

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
        if not (locks or slow or db_metrics):
            return None
        case = Case()
        case.add(s.weight(locks, 0.6), *s.quotes(locks, 3))
        case.add(s.weight(slow, 0.2 if locks else 0.3), *s.quotes(slow, 1))
        case.add(0.15 if db_metrics else 0.0, *(m.evidence for m in db_metrics[:1]))
        latency = s.metric(obs, s.LATENCY)
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
        what = locks[0].text if lock else slow[0].text if slow else db_metrics[0].describe()
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


RULE = DbLatency()
