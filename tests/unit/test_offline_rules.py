"""The offline diagnosis engine on incidents written for these tests (other services and
wording than the shared scenarios), so the rules are held to real failure patterns."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.eval import load_scenario
from agent.offline import RULES, diagnose, signals
from agent.types import (
    ActionKind,
    Category,
    Diagnosis,
    DiagnosisSource,
    IncidentContext,
    Observations,
    PastFix,
)
from integrations.alerts import Alert, AlertStatus, Severity
from integrations.observability.model import Deploy, ErrorIssue, HealthResult

ALL_ACTIONS = [ActionKind.RESTART, ActionKind.SCALE_UP, ActionKind.ROLLBACK]
SHARED_SCENARIOS = Path(__file__).resolve().parents[3] / "shared" / "scenarios"


def incident(
    service: str,
    title: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    allowed: list[ActionKind] | None = None,
) -> IncidentContext:
    alert = Alert(
        source="alertmanager",
        group_key=f"{service}:{title}",
        fingerprint=service,
        status=AlertStatus.FIRING,
        title=title,
        severity=Severity.CRITICAL,
        starts_at=datetime(2026, 3, 1, tzinfo=UTC),
        service=service,
        labels={"service": service, **(labels or {})},
        annotations=annotations or {},
    )
    return IncidentContext(
        title=title,
        alerts=[alert],
        service=service,
        allowed_actions=list(ALL_ACTIONS if allowed is None else allowed),
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
    )


def series(*values: float) -> list[tuple[float, float]]:
    return [(1_772_000_000 + 60 * i, float(v)) for i, v in enumerate(values)]


FLAT_CPU = series(*[22, 23, 21, 22, 24, 23, 22, 21, 23, 22, 23, 22])
FLAT_RPS = series(*[180, 184, 179, 182, 181, 183, 180, 178, 182, 181, 180, 183])


def cited(d: Diagnosis) -> str:
    return "\n".join([d.summary, d.root_cause, *(e.quote for e in d.evidence)])


def assert_quotes_are_exact(d: Diagnosis, obs: Observations) -> None:
    assert 1 <= len(d.evidence) <= 6
    for e in d.evidence:
        assert len(e.quote) <= signals.QUOTE_MAX
        if e.tool == "logs":
            assert any(e.quote in line for line in obs.logs), e.quote


def test_python_memory_error_with_growing_memory_is_a_leak_to_restart() -> None:
    obs = Observations(
        logs=[
            "[2026-03-01 10:00:01,200: INFO/MainProcess] Task reports.build[8c1] succeeded in 2.1s",
            "[2026-03-01 10:14:40,881: ERROR/ForkPoolWorker-3] Task reports.build[9f2] raised "
            "unexpected: MemoryError()",
            "Traceback (most recent call last):",
            '  File "/usr/local/lib/python3.12/site-packages/celery/app/trace.py", line 453, in '
            "trace_task",
            "    R = retval = fun(*args, **kwargs)",
            '  File "/srv/app/reports/build.py", line 88, in render',
            "    rows.extend(fetch_page(cursor))",
            "MemoryError",
            "[2026-03-01 10:15:02,004: ERROR/MainProcess] Process 'ForkPoolWorker-3' pid:4121 "
            "exited with 'signal 9 (SIGKILL)'",
        ],
        metrics={
            "memory_utilization_pct": series(*range(40, 100, 5)),
            "cpu_utilization_pct": FLAT_CPU,
        },
    )
    d = diagnose(incident("report-worker", "report-worker memory high"), obs)
    assert (d.category, d.action) == (Category.MEMORY_LEAK, ActionKind.RESTART)
    assert "MemoryError" in cited(d)
    assert "render (/srv/app/reports/build.py:88)" in d.root_cause
    assert "memory_utilization_pct rose steadily from 40 to 95" in cited(d)
    assert d.confidence >= 0.8
    assert d.summary.startswith("report-worker:")
    assert (d.source, d.model) == (DiagnosisSource.OFFLINE, "offline-rules")
    assert d.tool_calls == ["logs", "metrics"]
    assert len(d.evidence) >= 3
    assert_quotes_are_exact(d, obs)


def test_kernel_oom_kill_in_a_restart_loop_is_a_memory_leak_not_a_crash_loop() -> None:
    obs = Observations(
        logs=[
            "Mar 01 10:20:11 node-7 kernel: Memory cgroup out of memory: Killed process 31337 "
            "(java) total-vm:4194304kB, anon-rss:2097152kB, file-rss:0kB",
            "Mar 01 10:20:11 node-7 kernel: oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),"
            "task=java,pid=31337,uid=1000",
            "    Last State:     Terminated",
            "      Reason:       OOMKilled",
            "      Exit Code:    137",
            "Warning  BackOff  pod/search-indexer-5d9-k2  Back-off restarting failed container "
            "search-indexer in pod search-indexer-5d9-k2",
        ],
        metrics={
            "memory_utilization_pct": series(50, 58, 66, 74, 82, 90, 99, 31, 45, 60, 76, 92),
            "restarts_total": series(2, 2, 2, 2, 2, 2, 3, 3, 4, 4, 5, 5),
        },
    )
    d = diagnose(
        incident(
            "search-indexer", "KubePodCrashLooping", labels={"alertname": "KubePodCrashLooping"}
        ),
        obs,
    )
    assert (d.category, d.action) == (Category.MEMORY_LEAK, ActionKind.RESTART)
    assert "OOMKilled" in cited(d) or "Killed process" in cited(d)
    assert_quotes_are_exact(d, obs)


def test_nginx_upstream_timeouts_to_a_named_backend_are_a_dependency_outage() -> None:
    obs = Observations(
        logs=[
            '10.1.0.5 - - [01/Mar/2026:12:00:00 +0000] "GET /v1/quotes HTTP/1.1" 200 812 "-" '
            '"curl/8.5"',
            "2026/03/01 12:00:01 [error] 7#7: *1021 upstream timed out (110: Connection timed "
            "out) while reading response header from upstream, client: 10.1.0.5, server: "
            'api.example.com, request: "GET /v1/quotes HTTP/1.1", upstream: '
            '"http://pricing.internal:8080/v1/quotes"',
            "2026/03/01 12:00:04 [error] 7#7: *1022 connect() failed (111: Connection refused) "
            "while connecting to upstream, client: 10.1.0.9, server: api.example.com, request: "
            '"GET /v1/quotes HTTP/1.1", upstream: "http://pricing.internal:8080/v1/quotes"',
            '10.1.0.9 - - [01/Mar/2026:12:00:04 +0000] "GET /v1/quotes HTTP/1.1" 502 157 "-" '
            '"curl/8.5"',
        ],
        metrics={
            "cpu_utilization_pct": FLAT_CPU,
            "requests_per_second": FLAT_RPS,
            "http_error_ratio": series(*[0.001] * 6, 0.2, 0.3, 0.31, 0.3, 0.32, 0.3),
        },
        health=HealthResult(200, '{"status":"ok"}'),
    )
    d = diagnose(incident("api-gateway", "api-gateway 5xx above 5%"), obs)
    assert (d.category, d.action) == (Category.DEPENDENCY_DOWN, ActionKind.NONE)
    assert "pricing.internal" in d.summary
    assert "upstream timed out" in cited(d)
    assert_quotes_are_exact(d, obs)


def test_mysql_too_many_connections_is_exhaustion_that_a_human_must_clear() -> None:
    obs = Observations(
        logs=[
            "[2026-03-01 09:10:11] production.ERROR: SQLSTATE[HY000] [1040] Too many connections "
            "(SQL: select * from `orders` where `id` = 5)",
            "[2026-03-01 09:10:12] production.ERROR: SQLSTATE[HY000] [1040] Too many connections",
        ],
        metrics={
            "db_connections_in_use": series(
                150, 152, 149, 151, 300, 420, 497, 500, 500, 500, 500, 500
            ),
            "http_error_ratio": series(*[0.002] * 6, 0.05, 0.2, 0.3, 0.31, 0.3, 0.3),
        },
    )
    d = diagnose(incident("storefront-php", "storefront-php errors"), obs)
    assert (d.category, d.action) == (Category.DB_CONNECTION_EXHAUSTION, ActionKind.NONE)
    assert "Too many connections" in cited(d)
    assert "db_connections_in_use 500" in cited(d)


def test_image_pull_backoff_right_after_a_deploy_is_rolled_back() -> None:
    image = "registry.example.com/shop/web:2.4.1"
    obs = Observations(
        logs=[
            f'Normal   Pulling  pod/web-7c9d-abc  Pulling image "{image}"',
            f'Warning  Failed   pod/web-7c9d-abc  Failed to pull image "{image}": rpc error: '
            "code = "
            f'NotFound desc = failed to resolve reference "{image}": not found',
            "Warning  Failed   pod/web-7c9d-abc  Error: ImagePullBackOff",
            f'Normal   BackOff  pod/web-7c9d-abc  Back-off pulling image "{image}"',
        ],
        deploys=[Deploy("a1b2c3d", "web: release 2.4.1", "lee", 4, kind="deployment")],
    )
    d = diagnose(
        incident(
            "web",
            "Deployment has not matched the expected number of replicas",
            labels={"alertname": "KubeDeploymentReplicasMismatch"},
        ),
        obs,
    )
    assert (d.category, d.action) == (Category.BAD_DEPLOY, ActionKind.ROLLBACK)
    assert "a1b2c3d 'web: release 2.4.1' by lee, 4 min ago" in cited(d)
    assert "ImagePullBackOff" in cited(d) or "Failed to pull image" in cited(d)


@pytest.mark.parametrize(
    "line",
    [
        "javax.net.ssl.SSLHandshakeException: PKIX path validation failed: "
        "java.security.cert.CertPathValidatorException: validity check failed; "
        "CertificateExpiredException: NotAfter: Sun Mar 01 00:00:00 UTC 2026",
        'Get "https://api.partner.example/v2/orders": x509: certificate has expired or is not '
        "yet valid: current time 2026-03-01T00:05:00Z is after 2026-02-28T23:59:59Z",
        "request to https://api.partner.example/v2/orders failed, reason: certificate has "
        "expired (code CERT_HAS_EXPIRED)",
    ],
)
def test_expired_certificates_in_java_go_and_node_need_a_human(line: str) -> None:
    obs = Observations(
        logs=["starting sync run", line, "sync run failed, will retry in 60s"],
        errors=[ErrorIssue(line[:80], 40, first_seen_minutes_ago=300)],
    )
    d = diagnose(incident("partner-sync", "partner-sync failures"), obs)
    assert (d.category, d.action) == (Category.CERTIFICATE_EXPIRED, ActionKind.NONE)
    assert line[:60] in cited(d) or any(line.startswith(e.quote[:40]) for e in d.evidence)


def test_postgres_deadlocks_are_database_latency_with_no_automatic_action() -> None:
    obs = Observations(
        logs=[
            "2026-03-01 08:01:02.100 UTC [4411] app@shop ERROR:  deadlock detected",
            "2026-03-01 08:01:02.100 UTC [4411] app@shop DETAIL:  Process 4411 waits for ShareLock "
            "on transaction 7781; blocked by process 4409.",
            "2026-03-01 08:01:07.551 UTC [4420] app@shop ERROR:  canceling statement due to "
            "lock timeout",
        ],
        metrics={
            "latency_p95_ms": series(*[60] * 5, 900, 2400, 2600, 2500, 2700, 2600, 2650),
            "requests_per_second": FLAT_RPS,
            "cpu_utilization_pct": FLAT_CPU,
        },
    )
    d = diagnose(incident("checkout", "checkout p95 latency high"), obs)
    assert (d.category, d.action) == (Category.DB_LATENCY, ActionKind.NONE)
    assert "deadlock detected" in cited(d)


def test_pegged_cpu_with_flat_traffic_and_a_blocked_event_loop_is_cpu_saturation() -> None:
    rps_counter = series(*[1000 + 120 * 60 * i for i in range(12)])  # a steady 120 rps counter
    obs = Observations(
        logs=[
            '{"level":40,"msg":"Event loop blocked for 2300ms","handler":"POST /render"}',
            '{"level":40,"msg":"Event loop blocked for 4100ms","handler":"POST /render"}',
        ],
        metrics={
            "cpu_utilization_pct": series(30, 31, 29, 32, 30, 75, 96, 99, 99, 98, 99, 99),
            "http_requests_total": rps_counter,
        },
    )
    d = diagnose(incident("pdf-renderer", "pdf-renderer CPU above 90%"), obs)
    assert (d.category, d.action) == (Category.CPU_SATURATION, ActionKind.RESTART)
    assert "Event loop blocked" in cited(d)
    assert "rate(http_requests_total) 120 vs baseline 120 (1.0x)" in cited(d)


def test_a_counter_of_requests_that_surges_is_a_traffic_spike_to_scale() -> None:
    rates = [100] * 5 + [450] * 7
    counter, total = [], 0
    for rate in rates:
        total += rate * 60
        counter.append(total)
    obs = Observations(
        logs=["HPA checkout-web: desired replicas 14 exceeds maxReplicas; at max replicas (10)"],
        metrics={
            "http_requests_total": series(*counter),
            "http_error_ratio": series(*[0.001] * 6, 0.01, 0.012, 0.011, 0.012, 0.01, 0.011),
        },
    )
    d = diagnose(incident("checkout-web", "checkout-web latency high"), obs)
    assert (d.category, d.action) == (Category.TRAFFIC_SPIKE, ActionKind.SCALE_UP)
    assert "rate(http_requests_total) 450 vs baseline 100 (4.5x)" in cited(d)


def test_an_autoscaler_above_max_replicas_is_quoted_as_the_capacity_limit() -> None:
    event = "Warning FailedGetScale hpa/search-web desired replica count 26 is above maxReplicas 20"
    obs = Observations(
        logs=[event],
        metrics={
            "requests_per_second": series(*[800] * 6, *[2600] * 6),
            "http_error_ratio": series(*[0.001] * 12),
        },
    )
    d = diagnose(incident("search-web", "search-web p95 above 2s"), obs)
    assert (d.category, d.action) == (Category.TRAFFIC_SPIKE, ActionKind.SCALE_UP)
    assert "above maxReplicas 20" in cited(d)


def test_a_growing_size_report_and_a_worker_killed_out_of_memory_are_a_leak() -> None:
    obs = Observations(
        logs=[
            "2026-03-01T10:00:00Z WARN sessions: session store 1.2 GB and growing (evictions=0)",
            "2026-03-01T10:00:05Z INFO GET /cart 200",
            "2026-03-01T10:04:10Z CRITICAL supervisor: worker 4242 killed: out of memory",
        ]
    )
    d = diagnose(incident("cart-api", "cart-api pods restarting"), obs)
    assert (d.category, d.action) == (Category.MEMORY_LEAK, ActionKind.RESTART)
    assert "killed: out of memory" in cited(d)
    assert "1.2 GB and growing" in cited(d)


GROWING = series(*range(55, 100, 4))
ERRORS_UP = series(*[0.001] * 6, 0.3, 0.4, 0.4, 0.4, 0.4, 0.4)


def _alerted(service: str, alertname: str) -> IncidentContext:
    return incident(service, alertname, labels={"alertname": alertname})


# (incident, observations, expected category, expected action): real failures in many stacks.
MORE_INCIDENTS = [
    pytest.param(
        incident("ingest", "ingest restarted"),
        Observations(
            logs=["fatal error: runtime: out of memory", "goroutine 1 [running]:"],
            metrics={"memory_utilization_pct": GROWING},
        ),
        Category.MEMORY_LEAK,
        ActionKind.RESTART,
        id="go-runtime-oom",
    ),
    pytest.param(
        incident("pricing", "pricing errors"),
        Observations(
            logs=[
                "fail: Microsoft.AspNetCore.Server.Kestrel[13] Unhandled exception. "
                "System.OutOfMemoryException: Exception of type 'System.OutOfMemoryException' "
                "was thrown."
            ],
            metrics={"memory_working_set_pct": GROWING},
        ),
        Category.MEMORY_LEAK,
        ActionKind.RESTART,
        id="dotnet-oom",
    ),
    pytest.param(
        incident("api", "api 5xx"),
        Observations(
            logs=[
                "[2026-03-01 10:00:00 +0000] [1] [ERROR] Worker (pid:12) was sent SIGKILL! "
                "Perhaps out of memory?"
            ],
            metrics={"memory_utilization_pct": GROWING, "cpu_utilization_pct": FLAT_CPU},
        ),
        Category.MEMORY_LEAK,
        ActionKind.RESTART,
        id="gunicorn-sigkill",
    ),
    pytest.param(
        incident("frontend", "frontend 503s"),
        Observations(
            logs=[
                "upstream connect error or disconnect/reset before headers. reset reason: "
                "connection failure, transport failure reason: delayed connect error: 111"
            ],
            metrics={
                "cpu_utilization_pct": FLAT_CPU,
                "requests_per_second": FLAT_RPS,
                "http_error_ratio": ERRORS_UP,
            },
        ),
        Category.DEPENDENCY_DOWN,
        ActionKind.NONE,
        id="envoy-upstream",
    ),
    pytest.param(
        incident("sessions", "sessions errors"),
        Observations(
            logs=[
                "Error: connect ECONNREFUSED 10.0.4.12:6379",
                "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)",
            ],
            metrics={"cpu_utilization_pct": FLAT_CPU},
        ),
        Category.DEPENDENCY_DOWN,
        ActionKind.NONE,
        id="redis-refused",
    ),
    pytest.param(
        incident("notifier", "notifier failures"),
        Observations(
            logs=[
                '{"err":"Post \\"https://hooks.chat.example/T0\\": dial tcp: lookup '
                'hooks.chat.example on 10.96.0.10:53: no such host"}'
            ]
            * 3,
            metrics={"cpu_utilization_pct": FLAT_CPU},
        ),
        Category.DEPENDENCY_DOWN,
        ActionKind.NONE,
        id="dns-failure",
    ),
    pytest.param(
        incident("orders", "orders latency"),
        Observations(
            logs=[
                "SQLSTATE[HY000]: General error: 1205 Lock wait timeout exceeded; try restarting"
            ],
            metrics={
                "latency_p95_ms": series(*[80] * 5, 5000, *[50000] * 6),
                "requests_per_second": FLAT_RPS,
            },
        ),
        Category.DB_LATENCY,
        ActionKind.NONE,
        id="mysql-lock-wait",
    ),
    pytest.param(
        incident("reports", "reports slow"),
        Observations(
            logs=[
                "2026-03-01 10:00:00 UTC:10.0.0.1(5432):app@db:[77]:LOG:  duration: 15234.112 ms  "
                "statement: SELECT * FROM events WHERE created_at > now() - interval '90 days'"
            ],
            metrics={
                "rds_read_latency_ms": series(*[2] * 5, 30, 40, 42, 41, 40, 43, 44),
                "cpu_utilization_pct": FLAT_CPU,
            },
        ),
        Category.DB_LATENCY,
        ActionKind.NONE,
        id="slow-queries",
    ),
    pytest.param(
        incident("api", "api 500s"),
        Observations(
            logs=[
                "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, "
                "connection timed out, timeout 30.00"
            ]
        ),
        Category.DB_CONNECTION_EXHAUSTION,
        ActionKind.RESTART,
        id="sqlalchemy-pool",
    ),
    pytest.param(
        incident("uploader", "uploader errors"),
        Observations(
            logs=[
                '{"level":"error","msg":"write failed","error":"write /var/lib/up/part-1: '
                'no space left on device"}'
            ],
            metrics={"disk_used_pct": series(80, 84, 88, 92, 96, 99, 100, 100, 100)},
        ),
        Category.DISK_FULL,
        ActionKind.NONE,
        id="go-enospc",
    ),
    pytest.param(
        incident("search", "search writes failing"),
        Observations(
            logs=[
                "[WARN ][o.e.c.r.a.DiskThresholdMonitor] [es-0] flood stage disk watermark [95%] "
                "exceeded on [es-0], all indices on this node will be marked read-only"
            ]
        ),
        Category.DISK_FULL,
        ActionKind.NONE,
        id="elasticsearch-flood-stage",
    ),
    pytest.param(
        _alerted("www", "SSLCertExpired"),
        Observations(
            metrics={
                "probe_ssl_earliest_cert_expiry": [
                    (1_772_000_000 + 60 * i, 1_771_999_000.0) for i in range(10)
                ]
            }
        ),
        Category.CERTIFICATE_EXPIRED,
        ActionKind.NONE,
        id="expiry-timestamp-metric",
    ),
    pytest.param(
        _alerted("worker", "KubePodCrashLooping"),
        Observations(
            logs=[
                "Traceback (most recent call last):",
                '  File "/app/worker/main.py", line 3, in <module>',
                "    import orjson",
                "ModuleNotFoundError: No module named 'orjson'",
                "Warning  BackOff  pod/worker-6d-x  Back-off restarting failed container worker",
            ],
            deploys=[Deploy("9e8d7c6", "worker: switch to orjson", "ana", 8)],
        ),
        Category.CRASH_LOOP,
        ActionKind.ROLLBACK,
        id="missing-module-after-deploy",
    ),
    pytest.param(
        incident("accounts", "accounts pods restarting"),
        Observations(
            logs=[
                "APPLICATION FAILED TO START",
                "Reason: Could not resolve placeholder 'DB_URL' in value \"${DB_URL}\"",
                "Warning  BackOff  pod/accounts-5-x  Back-off restarting failed container accounts",
            ],
            deploys=[Deploy("1a2b3c4", "accounts: tidy", "bo", 5000)],
        ),
        Category.CRASH_LOOP,
        ActionKind.NONE,
        id="spring-missing-setting",
    ),
    pytest.param(
        incident("catalog", "catalog 5xx"),
        Observations(
            logs=[
                'java.lang.NullPointerException: Cannot invoke "Price.amount()" because "price" '
                "is null",
                "\tat com.acme.catalog.PriceFormatter.format(PriceFormatter.java:31)",
            ],
            metrics={"http_error_ratio": ERRORS_UP, "requests_per_second": FLAT_RPS},
            deploys=[Deploy("77aa88b", "catalog: new price formatter", "jo", 7)],
        ),
        Category.BAD_DEPLOY,
        ActionKind.ROLLBACK,
        id="java-npe-after-deploy",
    ),
    pytest.param(
        incident("store", "store errors"),
        Observations(
            logs=["FATAL -- : NoMethodError (undefined method `name' for nil:NilClass):"],
            deploys=[Deploy("c0ffee1", "orders: show buyer name", "li", 9)],
        ),
        Category.BAD_DEPLOY,
        ActionKind.ROLLBACK,
        id="ruby-nomethod-after-deploy",
    ),
    pytest.param(
        incident("search", "search p95 high"),
        Observations(
            metrics={
                "latency_p95_ms": series(*[90] * 8, 400, 420, 410, 430),
                "requests_per_second": FLAT_RPS,
                "http_error_ratio": series(*[0.001] * 12),
            },
            deploys=[Deploy("5e5e5e5", "search: rerank with new model", "mo", 5)],
        ),
        Category.BAD_DEPLOY,
        ActionKind.ROLLBACK,
        id="latency-regression-after-deploy",
    ),
    pytest.param(
        incident("shop", "shop latency"),
        Observations(
            logs=[
                f'203.0.113.9 - - [01/Mar/2026:10:00:{i:02d} +0000] "GET /products/{i} HTTP/1.1" '
                '200 5120 "-" "Bytespider"'
                for i in range(10)
            ],
            metrics={
                "requests_per_second": series(300, 310, 305, 300, 1200, 1300, 1250, 1300, 1280),
                "cpu_utilization_pct": series(30, 30, 31, 30, 85, 90, 91, 92, 91),
            },
        ),
        Category.TRAFFIC_SPIKE,
        ActionKind.SCALE_UP,
        id="crawler-surge",
    ),
    pytest.param(
        _alerted("encoder", "CPUThrottlingHigh"),
        Observations(
            metrics={
                "cpu_utilization_pct": series(35, 36, 35, 37, 80, 97, 99, 99, 99, 99),
                "requests_per_second": series(50, 51, 50, 49, 50, 51, 50, 50, 49, 50),
            }
        ),
        Category.CPU_SATURATION,
        ActionKind.RESTART,
        id="cpu-metrics-only",
    ),
    pytest.param(
        incident("legacy", "legacy down"),
        Observations(health=HealthResult(503, "Service Unavailable")),
        Category.UNKNOWN,
        ActionKind.NONE,
        id="only-an-unhealthy-probe",
    ),
]


@pytest.mark.parametrize(("ctx", "obs", "category", "action"), MORE_INCIDENTS)
def test_more_incidents_in_other_stacks_and_wording(
    ctx: IncidentContext, obs: Observations, category: Category, action: ActionKind
) -> None:
    d = diagnose(ctx, obs)
    assert (d.category, d.action) == (category, action), d.summary
    assert_quotes_are_exact(d, obs)


def test_a_dependency_on_a_well_known_port_is_named_by_its_kind() -> None:
    obs = Observations(logs=["Error: connect ECONNREFUSED 10.0.4.12:6379"])
    d = diagnose(incident("sessions", "sessions errors"), obs)
    assert "redis at 10.0.4.12:6379" in d.summary


def test_a_surge_names_the_client_behind_it() -> None:
    ctx, obs = MORE_INCIDENTS[17].values[:2]
    d = diagnose(ctx, obs)
    assert "203.0.113.9" in d.root_cause and "Bytespider" in d.root_cause


def test_a_leak_that_began_after_a_fresh_deploy_is_rolled_back() -> None:
    obs = Observations(
        logs=["java.lang.OutOfMemoryError: Java heap space"],
        metrics={"memory_utilization_pct": series(40, 41, 40, 41, 40, 52, 64, 75, 86, 95, 98)},
        deploys=[Deploy("b1gcac4e", "orders: cache price lookups", "ivy", 7)],
    )
    d = diagnose(incident("orders", "orders OOM"), obs)
    assert (d.category, d.action) == (Category.MEMORY_LEAK, ActionKind.ROLLBACK)
    assert "b1gcac4e" in d.root_cause


def test_a_leak_already_growing_before_a_fresh_deploy_is_restarted_not_rolled_back() -> None:
    obs = Observations(
        logs=["java.lang.OutOfMemoryError: Java heap space"],
        metrics={"memory_utilization_pct": series(*range(50, 100, 4))},
        deploys=[Deploy("d0c5f1x", "docs: typo", "ivy", 4)],
    )
    d = diagnose(incident("orders", "orders OOM"), obs)
    assert (d.category, d.action) == (Category.MEMORY_LEAK, ActionKind.RESTART)


def test_a_crash_loop_that_started_before_a_fresh_deploy_is_not_blamed_on_it() -> None:
    obs = Observations(
        logs=[
            'FATAL failed to load config {"error": "open /etc/app/token: no such file or directory"}',
            "Warning  BackOff  pod/x-1  Back-off restarting failed container x in pod x-1",
        ],
        metrics={"restarts_total": series(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)},
        deploys=[Deploy("e5e5e5e", "readme", "kai", 3)],
    )
    d = diagnose(incident("x", "x restarting"), obs)
    assert (d.category, d.action) == (Category.CRASH_LOOP, ActionKind.NONE)


def test_errors_long_after_an_old_deploy_are_not_blamed_on_it() -> None:
    obs = Observations(
        logs=[
            "Traceback (most recent call last):",
            '  File "/app/x.py", line 3, in f',
            "KeyError: 'id'",
        ],
        deploys=[Deploy("0ff1ce0", "tidy imports", "kim", 4000)],
        errors=[ErrorIssue("KeyError: 'id'", 12, first_seen_minutes_ago=30)],
    )
    d = diagnose(incident("ledger", "ledger errors"), obs)
    assert d.category is not Category.BAD_DEPLOY
    assert d.action is not ActionKind.ROLLBACK


def test_errors_that_began_before_a_fresh_deploy_are_not_blamed_on_it() -> None:
    obs = Observations(
        logs=["ERROR: upstream request failed"],
        metrics={"http_error_ratio": series(0.001, 0.001, 0.2, 0.3, 0.3, 0.31, 0.3, 0.3, 0.3, 0.3)},
        deploys=[Deploy("5ca1ab1", "docs: readme", "kim", 2)],
    )
    d = diagnose(incident("ledger", "ledger errors"), obs)
    assert d.category is not Category.BAD_DEPLOY


def test_nothing_recognisable_gives_unknown_with_triage_from_what_was_seen() -> None:
    obs = Observations(
        logs=["GET /api/items 200 12ms", "ERROR request to /api/items/9 returned 404"],
        metrics={"latency_p95_ms": series(100, 102, 98, 101, 99, 250, 260, 255, 262, 258)},
        deploys=[Deploy("abc1234", "copy change", "sam", 600)],
    )
    d = diagnose(incident("catalog", "catalog latency"), obs)
    assert (d.category, d.action) == (Category.UNKNOWN, ActionKind.NONE)
    assert d.confidence <= 0.3
    checks = "\n".join(d.checks)
    assert "latency_p95_ms" in checks
    assert "abc1234" in checks
    assert "returned 404" in checks
    assert 3 <= len(d.evidence) <= 6


def test_no_observations_at_all_still_answers_with_triage() -> None:
    d = diagnose(incident("billing", "billing down"), Observations())
    assert d.category is Category.UNKNOWN
    assert any("No logs or metrics" in c for c in d.checks)
    assert d.tool_calls == []


def _leak() -> Observations:
    return Observations(
        logs=[
            "java.lang.OutOfMemoryError: Java heap space",
            "[gc] Pause Full (Allocation Failure) 1990M->1985M",
        ],
        metrics={"memory_utilization_pct": series(*range(50, 100, 4))},
    )


def test_an_action_the_service_does_not_allow_is_not_proposed_but_explained() -> None:
    d = diagnose(incident("orders", "orders OOM", allowed=[ActionKind.SCALE_UP]), _leak())
    assert d.category is Category.MEMORY_LEAK
    assert d.action is ActionKind.NONE
    assert "I would restart it" in d.mitigation


def test_an_empty_allow_list_allows_the_rule_action() -> None:
    d = diagnose(incident("orders", "orders OOM", allowed=[]), _leak())
    assert d.action is ActionKind.RESTART


def test_past_fixes_are_reported_and_nudge_confidence_when_they_agree() -> None:
    ctx = incident("orders", "orders OOM")
    plain = diagnose(ctx, _leak())
    obs = _leak()
    obs.past_fixes = [PastFix("restart", 2, 2)]
    remembered = diagnose(ctx, obs)
    assert remembered.past_fixes == "last time, restart fixed it (2 of 2 times)"
    assert remembered.confidence > plain.confidence
    assert "past_incidents" in remembered.tool_calls


def test_the_engine_is_deterministic() -> None:
    ctx = incident("orders", "orders OOM")
    assert diagnose(ctx, _leak()) == diagnose(ctx, _leak())


@pytest.mark.parametrize(
    ("lines", "where", "code"),
    [
        (
            [
                "Traceback (most recent call last):",
                '  File "/usr/lib/python3.11/site-packages/flask/app.py", line 10, in call',
                "    return f()",
                '  File "/app/shop/cart.py", line 42, in total',
                "    return sum(i.price for i in items)",
                '  File "/usr/lib/python3.11/site-packages/sqlalchemy/orm.py", line 5, in get',
                "    raise X",
                "AttributeError: 'NoneType' object has no attribute 'price'",
            ],
            "total (/app/shop/cart.py:42)",
            "return sum(i.price for i in items)",
        ),
        (
            [
                "java.lang.NullPointerException: boom",
                "\tat java.base/java.util.Objects.requireNonNull(Objects.java:233)",
                "\tat org.springframework.web.Foo.bar(Foo.java:1)",
                "\tat com.acme.billing.InvoiceService.total(InvoiceService.java:77)",
                "\tat com.acme.billing.Api.get(Api.java:12)",
            ],
            "com.acme.billing.InvoiceService.total",
            None,
        ),
        (
            [
                "panic: runtime error: index out of range [3] with length 3",
                "goroutine 7 [running]:",
                "github.com/acme/queue/internal/worker.(*Pool).next(0xc000010000)",
                "\t/src/internal/worker/pool.go:88 +0x1d",
                "main.main()",
                "\t/src/cmd/queue/main.go:20 +0x25",
            ],
            "worker.(*Pool).next (/src/internal/worker/pool.go:88)",
            None,
        ),
        (
            [
                "TypeError: Cannot read properties of undefined (reading 'id')",
                "    at Object.<anonymous> (/app/node_modules/express/lib/router.js:10:5)",
                "    at handleOrder (/app/src/orders.js:31:17)",
                "    at node:internal/process/task_queues:95:5",
            ],
            "handleOrder (/app/src/orders.js:31)",
            None,
        ),
    ],
)
def test_stack_traces_point_at_the_services_own_code(
    lines: list[str], where: str, code: str | None
) -> None:
    frame = signals.app_frame(["GET /x 500", *lines], near=1)
    assert frame is not None
    assert (frame.where, frame.code) == (where, code)


def test_quotes_of_long_lines_keep_the_matched_phrase() -> None:
    line = "2026-03-01T00:00:00.000Z " + "x" * 300 + " upstream timed out (110) " + "y" * 300
    hit = signals.find([line], [signals.pattern("t", r"upstream timed out", 1.0)])[0]
    assert "upstream timed out" in hit.quote
    assert len(hit.quote) <= signals.QUOTE_MAX
    assert hit.quote in line


def _log_lines() -> list[str]:
    lines = [
        "2026/03/01 12:00:01 [error] upstream timed out (110: Connection timed out)",
        "kernel: Out of memory: Killed process 1 (x)",
        "SQLSTATE[HY000] [1040] Too many connections",
        "Exit Code:    137",
        "ERROR:  canceling statement due to statement timeout",
        "ScalingLimited  True    TooManyReplicas   the desired replica count is more",
    ]
    if SHARED_SCENARIOS.is_dir():
        for path in sorted(SHARED_SCENARIOS.glob("*.json")):
            lines.extend(load_scenario(path).observations.logs)
    return lines


def test_the_substring_prefilter_never_hides_a_match() -> None:
    import importlib

    lines = _log_lines()
    patterns = [
        p
        for rule in RULES
        for value in vars(importlib.import_module(type(rule).__module__)).values()
        if isinstance(value, tuple)
        for p in value
        if isinstance(p, signals.Pattern)
    ]
    assert len(patterns) > 50
    for p in patterns:
        for line in lines:
            if p.regex.search(line) and p.keys is not None:
                assert any(k in line.lower() for k in p.keys), (p.name, line)


def test_every_rule_declares_its_name_category_and_default_action() -> None:
    names = [r.name for r in RULES]
    assert len(set(names)) == len(names)
    categories = {r.category for r in RULES}
    assert categories == set(Category) - {Category.UNKNOWN}
    assert all(isinstance(r.action, ActionKind) for r in RULES)
    assert all(re.fullmatch(r"[a-z_]+", n) for n in names)
