"""Offline rules for states the Kubernetes controllers and common stacks document (evictions,
Job backoff, probe kills, timed database calls, per-route latency, connection errors), on
workloads of these tests' own making rather than any scenario file."""

from __future__ import annotations

import pytest

from agent.offline import diagnose
from agent.types import ActionKind, Category, Observations
from integrations.observability.model import Deploy, HealthResult
from tests.unit.test_offline_kubernetes import describe_pod
from tests.unit.test_offline_rules import assert_quotes_are_exact, cited, incident, series

# ------------------------------------------------------------------------ evictions


def test_an_eviction_for_node_memory_pressure_is_a_memory_problem_a_human_must_size() -> None:
    # kubelet eviction manager: "The node was low on resource: memory. Container X was using
    # NKi, which exceeds its request of M." and the node.kubernetes.io/memory-pressure taint,
    # as `kubectl get events -A` prints them (NAMESPACE, LAST SEEN, TYPE, REASON, OBJECT, MESSAGE).
    obs = Observations(
        kubernetes=[
            "NAMESPACE   LAST SEEN   TYPE      REASON             OBJECT                        "
            "MESSAGE",
            "reports     2m          Warning   Evicted            pod/pdf-render-6c9d7b5f4-7wq2k  "
            "The node was low on resource: memory. Container render was using 3145728Ki, which "
            "exceeds its request of 512Mi.",
            "reports     2m          Normal    Killing            pod/pdf-render-6c9d7b5f4-7wq2k  "
            "Stopping container render",
            "reports     90s         Warning   FailedScheduling   pod/pdf-render-6c9d7b5f4-j8m3d  "
            "0/3 nodes are available: 3 node(s) had taint {node.kubernetes.io/memory-pressure: }, "
            "that the pod didn't tolerate.",
        ]
    )
    d = diagnose(incident("pdf-render", "KubePodNotReady"), obs)
    assert d.category is Category.MEMORY_LEAK
    assert d.proposed_action.action is ActionKind.NONE
    assert "low on resource: memory" in cited(d) and "3145728Ki" in cited(d)
    assert "memory-pressure" in cited(d)


# ------------------------------------------------------------------------ Jobs


def test_a_job_whose_shell_script_does_not_parse_is_a_start_up_failure_to_fix_by_hand() -> None:
    # kubectl describe job: "Pods Statuses: 0 Active / 0 Succeeded / N Failed" and the job
    # controller's BackoffLimitExceeded; dash prints "sh: 1: Syntax error: ..." and bash
    # "bash: -c: line 1: syntax error near unexpected token".
    obs = Observations(
        kubernetes=[
            "Name:             nightly-export",
            "Backoff Limit:    2",
            "Pods Statuses:    0 Active (0 Ready) / 0 Succeeded / 3 Failed",
            "Events:",
            "  Type     Reason                Age   From            Message",
            "  ----     ------                ----  ----            -------",
            "  Warning  BackoffLimitExceeded  40s   job-controller  Job has reached the specified "
            "backoff limit",
        ],
        logs=["/bin/bash: -c: line 1: syntax error near unexpected token `done'"],
    )
    d = diagnose(incident("nightly-export", "KubeJobFailed", labels={"job_name": "x"}), obs)
    assert d.category is Category.CRASH_LOOP
    assert d.proposed_action.action is ActionKind.NONE  # a Job: nothing to restart or roll back
    assert "syntax error near unexpected token" in cited(d)


def test_a_job_that_fails_on_a_host_that_does_not_resolve_names_the_dependency() -> None:
    obs = Observations(
        kubernetes=[
            "Pods Statuses:    0 Active (0 Ready) / 0 Succeeded / 1 Failed",
            "  Warning  BackoffLimitExceeded  1m   job-controller  Job has reached the specified "
            "backoff limit",
        ],
        logs=["curl: (6) Could not resolve host: feeds.partner.example"],
    )
    d = diagnose(incident("feed-sync", "KubeJobFailed", labels={"job_name": "feed-sync"}), obs)
    assert d.category is Category.DEPENDENCY_DOWN
    assert "feeds.partner.example" in cited(d)


# ------------------------------------------------------------------------ database


def test_database_calls_the_service_times_as_slow_are_database_latency() -> None:
    # Application logs that time their own database calls, with the statement logged first.
    logs: list[str] = []
    for seconds in (4.2, 6.8, 5.1):
        logs += [
            "INFO orders: loading invoice history",
            "INFO orders: executing query: SELECT * FROM invoices WHERE customer_id = $1",
            f"INFO orders: query took {int(seconds * 1000)}ms",
            "INFO orders: GET /invoices 200",
        ]
    obs = Observations(logs=logs)
    d = diagnose(incident("orders", "InvoicesSlow"), obs)
    assert d.category is Category.DB_LATENCY
    assert d.proposed_action.action is ActionKind.NONE
    assert "query took 6800ms" in cited(d) and "SELECT * FROM invoices" in cited(d)
    assert_quotes_are_exact(d, obs)


def test_one_fast_database_call_is_not_database_latency() -> None:
    obs = Observations(logs=["INFO db: query took 12ms", "INFO db: query took 2100ms"])
    d = diagnose(incident("orders", "Something"), obs)
    assert d.category is not Category.DB_LATENCY  # one slow call is not a pattern


# ------------------------------------------------------------------------ latency by route


def test_latency_of_the_route_that_got_slow_is_the_evidence_not_the_first_series() -> None:
    flat = [120, 118, 121, 119, 122, 120, 118, 121, 120, 119, 121, 120]
    slow = [140, 138, 141, 139, 142, 140, 1900, 2100, 2050, 1980, 2020, 2000]
    obs = Observations(
        metrics={
            'latency_p95_ms{route="/"}': series(*flat),
            'latency_p95_ms{route="/checkout"}': series(*slow),
        },
        deploys=[
            Deploy(sha="9f1e2d3", message="checkout: new tax client", author="ana", minutes_ago=6)
        ],
    )
    d = diagnose(incident("storefront", "CheckoutLatencyHigh"), obs)
    assert d.category is Category.BAD_DEPLOY
    assert 'route="/checkout"' in cited(d)


def test_too_many_connections_and_pool_timeouts_are_exhaustion_not_slow_queries() -> None:
    # MySQL error 1040 as a Node client prints it, and node-postgres' pool timeout, while the
    # queries that do run are slow only because they queue for a connection.
    obs = Observations(
        logs=[
            "ERROR api: ER_CON_COUNT_ERROR: too many connections",
            "ERROR api: Error: timeout exceeded when trying to connect",
        ],
        metrics={
            "db_connections_in_use": series(40, 41, 42, 60, 150, 150, 150, 150),
            "query_duration_ms": series(9, 9, 10, 300, 9000, 9100, 9050, 9000),
        },
    )
    d = diagnose(incident("api", "APIHighErrorRate"), obs)
    assert d.category is Category.DB_CONNECTION_EXHAUSTION
    assert d.proposed_action.action is ActionKind.NONE  # the server is full: a human clears it
    assert "too many connections" in cited(d)


# ------------------------------------------------------------------------ deploys


def test_a_release_that_references_a_secret_that_does_not_exist_is_rolled_back() -> None:
    obs = Observations(
        logs=['level=error msg="startup check failed" err="secret \\"billing/db-dsn\\" not found"'],
        deploys=[
            Deploy(sha="billing:57", message="release 2026.11.04.1", author="ci", minutes_ago=5)
        ],
        health=HealthResult(500, "health check failed"),
    )
    d = diagnose(incident("billing", "TargetsUnhealthy"), obs)
    assert d.category is Category.BAD_DEPLOY
    assert d.proposed_action.action is ActionKind.ROLLBACK
    assert "billing/db-dsn" in cited(d) and "billing:57" in cited(d)


# ------------------------------------------------------------------------ SIGKILL, probes

KILLED_137 = ["Terminated", "Reason:       Error", "Exit Code:    137"]


@pytest.mark.parametrize(
    "obs",
    [
        Observations(
            kubernetes=describe_pod(
                "ingest-7f6d5c4b3-h2k9p", state=["Running"], last=KILLED_137, restarts=2
            )
        ),
        Observations(logs=["ingest-1 exited with code 137", "ingest-1 exited with code 137"]),
    ],
)
def test_exit_code_137_alone_is_only_a_weak_memory_lead(obs: Observations) -> None:
    # 137 = 128 + SIGKILL: the OOM killer sends it, and so do the kubelet and `docker kill`.
    d = diagnose(incident("ingest", "KubePodRestarting"), obs)
    assert d.category in (Category.MEMORY_LEAK, Category.UNKNOWN, Category.CRASH_LOOP)
    assert d.confidence < 0.35
    assert d.proposed_action.action is ActionKind.NONE


def test_exit_code_137_after_a_failed_liveness_probe_is_not_a_memory_problem() -> None:
    # kubelet: "Container X failed liveness probe, will be restarted" and then SIGKILL.
    events = [
        "  Warning  Unhealthy  30s (x3 over 50s)  kubelet  Liveness probe failed: HTTP probe "
        "failed with statuscode: 500",
        "  Normal   Killing    30s                kubelet  Container app failed liveness probe, "
        "will be restarted",
    ]
    obs = Observations(
        kubernetes=describe_pod(
            "ingest-7f6d5c4b3-h2k9p",
            state=["Running"],
            last=KILLED_137,
            restarts=5,
            events=events,
        )
    )
    d = diagnose(incident("ingest", "KubePodRestarting"), obs)
    assert d.category is not Category.MEMORY_LEAK


PROBE_TIMEOUTS = [
    "  Warning  Unhealthy  1m (x9 over 6m)  kubelet  Liveness probe failed: Get "
    '"http://10.1.4.7:8080/healthz": context deadline exceeded (Client.Timeout exceeded while '
    "awaiting headers)",
    "  Normal   Killing    1m (x3 over 6m)  kubelet  Container app failed liveness probe, will "
    "be restarted",
]
# a pod whose liveness probe times out and kubelet kills it (exit 137), restarted 7 times
PROBE_KILLED_POD = Observations(
    kubernetes=describe_pod(
        "search-6b8f7d9c5-2xk4p",
        state=["Running"],
        last=KILLED_137,
        restarts=7,
        events=PROBE_TIMEOUTS,
    )
)


def test_probes_timing_out_while_load_is_high_mean_too_few_replicas() -> None:
    obs = PROBE_KILLED_POD
    ctx = incident(
        "search",
        "PodRestartsHigh",
        annotations={"description": "search pods restart during the evening traffic peak"},
    )
    d = diagnose(ctx, obs)
    assert d.category is Category.TRAFFIC_SPIKE
    assert d.proposed_action.action is ActionKind.SCALE_UP
    assert "context deadline exceeded" in cited(d)


def test_probes_timing_out_with_no_sign_of_load_are_not_called_a_traffic_spike() -> None:
    obs = PROBE_KILLED_POD
    d = diagnose(incident("search", "PodRestartsHigh"), obs)
    assert d.category is not Category.TRAFFIC_SPIKE
    assert d.category is not Category.MEMORY_LEAK


# ------------------------------------------------------------------------ admission, start-up OOM


def test_a_rollout_whose_pods_exceed_the_namespace_quota_is_rolled_back() -> None:
    # The ResourceQuota admission plugin, as the ReplicaSet controller's FailedCreate quotes it.
    obs = Observations(
        kubernetes=[
            "  Warning  FailedCreate  30s (x5 over 2m)  replicaset-controller  Error creating: pods "
            '"reports-7d9c6b5f8-x2k4q" is forbidden: exceeded quota: team-quota, requested: '
            "requests.cpu=4, used: requests.cpu=2, limited: requests.cpu=5",
        ],
        deploys=[
            Deploy(sha="r-311", message="reports: 4 CPUs per worker", author="li", minutes_ago=3)
        ],
    )
    d = diagnose(incident("reports", "KubeDeploymentReplicasMismatch"), obs)
    assert d.category is Category.BAD_DEPLOY
    assert d.proposed_action.action is ActionKind.ROLLBACK
    assert "exceeded quota: team-quota" in cited(d)


def test_a_jvm_out_of_memory_on_every_restart_needs_more_memory_not_a_restart() -> None:
    obs = Observations(
        logs=[
            "java.lang.OutOfMemoryError: Java heap space",
            "  at org.example.cache.Preloader.<init>(Preloader.java:61)",
        ]
    )
    d = diagnose(incident("catalog-loader", "Job catalog-loader is RESTARTING"), obs)
    assert d.category is Category.MEMORY_LEAK
    assert d.proposed_action.action is ActionKind.NONE
    assert "Preloader.<init>" in cited(d)  # where it was allocating when memory ran out


def test_a_jvm_out_of_memory_with_memory_growing_over_hours_is_still_a_leak_to_restart() -> None:
    obs = Observations(
        logs=["java.lang.OutOfMemoryError: Java heap space"],
        metrics={"jvm_heap_used_pct": series(41, 48, 55, 61, 68, 74, 80, 86, 91, 97)},
    )
    d = diagnose(incident("catalog-api", "Pod restarted 3 times"), obs)
    assert d.category is Category.MEMORY_LEAK
    assert d.proposed_action.action is ActionKind.RESTART
