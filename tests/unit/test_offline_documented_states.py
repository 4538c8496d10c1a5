"""Offline rules for states the Kubernetes controllers and common stacks document (evictions,
Job backoff, probe kills, timed database calls, per-route latency, connection errors), on
workloads of these tests' own making rather than any scenario file."""

from __future__ import annotations

from agent.offline import diagnose
from agent.types import ActionKind, Category, Observations
from integrations.observability.model import Deploy
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
