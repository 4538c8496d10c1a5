"""Connection exhaustion: the application's pool (HikariCP, SQLAlchemy, knex) or the
database's max_connections (PostgreSQL, MySQL, PgBouncer) is used up."""

from __future__ import annotations

import re

from agent.offline import signals as s
from agent.offline import structured
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

SERVER_FULL = (
    s.pattern(
        "pg_too_many", r"too many clients already|too many connections for (role|database)", 0.45
    ),
    s.pattern("pg_reserved", r"remaining connection slots are reserved", 0.35),
    # MySQL's ER_CON_COUNT_ERROR (1040), which clients and proxies often print in lower case.
    s.pattern("mysql_too_many", r"[Tt]oo many connections\b(?! for)|ER_CON_COUNT_ERROR", 0.45),
    s.pattern(
        "pgbouncer_full",
        r"no more connections allowed|max_client_conn|max number of clients reached",
        0.4,
    ),
)
POOL_EMPTY = (
    s.pattern(
        "pool_timeout",
        r"Connection is not available, request timed out|QueuePool limit of size \d+ overflow|"
        r"Timeout acquiring a connection|Timeout waiting for (idle object|connection from pool)|"
        r"pool (is )?exhausted|failed to acquire (a )?connection|Unable to acquire JDBC Connection|"
        r"fetching a new connection from the connection pool|"
        # node-postgres, Sequelize, R2DBC pool, and the plain wording many wrappers use
        r"timeout exceeded when trying to connect|ConnectionAcquireTimeoutError|"
        r"Connection acquisition timed out|connection pool timeout|"
        r"timed out waiting for (a )?(free |available )?connection",
        0.45,
    ),
    s.pattern(
        "pool_busy",
        r"no available connection and the queue has reached its max size( \d+)?|"
        r"BusyPoolException|Pool is busy|connection pool (is )?(full|exhausted)",
        0.45,
        ignore_case=True,
    ),
    s.pattern("pool_failed", r"Failed to obtain JDBC Connection|Cannot get a connection", 0.2),
)
LEAKS = (
    s.pattern("pool_leak", r"Apparent connection leak detected", 0.3),
    s.pattern("leak_detection", r"[Cc]onnection leak|leaked connection", 0.15),
)
# Lines that show who holds the connections (monitoring queries, per-user counts).
HOLDERS = (
    s.pattern(
        "by_user", r"connections (by|per) (user|client|application|database)", 0.0, ignore_case=True
    ),
    s.pattern("idle_sessions", r"sessions?:? .*idle=\d+|idle=\d+ active=\d+", 0.0),
    s.pattern("pool_stats", r"Pool stats \(total=\d+, active=\d+, idle=\d+, waiting=\d+\)", 0.0),
)
_CONNECTIONS = re.compile(r"connections|pool_(active|in_use|used)", re.IGNORECASE)
_WAITING = re.compile(
    r"pool_(waiting|pending)|waiting_(threads|requests)|pending_acquire", re.IGNORECASE
)
_ALERT = re.compile(r"connection|pool|max_connections", re.IGNORECASE)


_FULL_PERCENT = 95.0


def _full_gauges(obs: Observations) -> list[structured.Record]:
    """JSON log lines whose gauges say the pool is full: pool_usage_percent near 100, or
    active connections at their maximum."""
    full: list[structured.Record] = []
    for r in structured.records(obs.logs):
        usage = structured.gauge(r, "pool_usage_percent", "pool_utilization_percent")
        active = structured.gauge(r, "active_connections", "connections_active", "in_use")
        limit = structured.gauge(r, "max_connections", "pool_max", "max_pool_size", "pool_size")
        if (usage is not None and usage >= _FULL_PERCENT) or (
            active is not None and limit and active >= limit
        ):
            full.append(r)
    return full


def _plateau(m: s.Shape) -> bool:
    """Pinned at its maximum for the last points, well above where it started."""
    return m.ratio >= 1.5 and all(v >= 0.97 * m.peak for v in m.values[-3:])


class DbConnectionExhaustion:
    name = "db_connections"
    category = Category.DB_CONNECTION_EXHAUSTION
    action = ActionKind.RESTART

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        server = s.observed(obs, SERVER_FULL)
        pool = s.observed(obs, POOL_EMPTY)
        leaks = s.observed(obs, LEAKS)
        pinned = [m for m in s.metrics_named(obs, _CONNECTIONS) if _plateau(m)]
        waiting = [m for m in s.metrics_named(obs, _WAITING) if m.current > 0 and m.ratio > 1]
        alert = s.alert_hit(ctx, _ALERT)
        full = _full_gauges(obs)
        if not (server or pool or leaks or full or (pinned and (waiting or alert))):
            return None
        case = Case()
        case.add(s.weight(server + pool, 0.6), *s.quotes(server + pool, 2))
        case.add(s.weight(leaks, 0.35), *s.quotes(leaks, 1))
        case.add(0.4 if full else 0.0, *(r.evidence for r in full[:1]))
        frame = s.frame_near(obs, leaks)
        case.cite([frame.evidence] if frame else [])
        holders = s.find(obs.logs, HOLDERS)
        case.cite(s.quotes(holders, 1))
        case.add(0.2 if pinned else 0.0, *(m.evidence for m in pinned[:1]))
        case.add(0.15 if waiting else 0.0, *(m.evidence for m in waiting[:1]))
        case.add(0.1 if alert else 0.0, alert)
        if obs.health and not obs.health.healthy:
            case.cite([s.health_evidence(obs)])

        # The database refusing clients is fixed by whoever holds the slots; a pool drained
        # by this service's own leaked connections is cleared by restarting it.
        own_pool = bool(pool or leaks or waiting or full) and not server
        found = server + pool + leaks
        what = (
            found[0].text
            if found
            else full[0].message or "the pool is full"
            if full
            else pinned[0].describe()
        )
        leak = (
            f" Connections are leaked (borrowed and never returned) at {frame.describe()}."
            if frame
            else " Connections are borrowed and never returned (leak detection fired)."
            if leaks
            else ""
        )
        holder = f" Who holds them: {holders[0].quote}." if holders else ""
        return case.finding(
            self,
            headline=(
                f"connection pool exhausted ({what})"
                if own_pool
                else f"database out of connection slots ({what})"
            ),
            root_cause=(
                (
                    f"The service's connection pool is used up, so requests wait and time out "
                    f"({what}).{leak}{holder}"
                )
                if own_pool
                else (
                    f"The database has reached max_connections and refuses new clients "
                    f"({what}).{holder}{leak}"
                )
            ),
            checks=(
                "Count connections per user/application: SELECT usename, application_name, state, "
                "count(*) FROM pg_stat_activity GROUP BY 1,2,3 (MySQL: SHOW PROCESSLIST)",
                "Look for idle or idle-in-transaction sessions and the client that opened them",
                "Check pool size × replicas against the database's max_connections",
            ),
            mitigation=(
                "Restart the service to return the leaked connections, then fix the code path "
                "that does not close them"
                if own_pool
                else "A human should stop or throttle the client holding the most connections and "
                "terminate its idle sessions; restarting this service would not free the slots"
            ),
            action=self.action if own_pool else ActionKind.NONE,
        )


RULE = DbConnectionExhaustion()
