"""The offline rules on Kubernetes evidence, written from what kubelet, the controllers and
common clients document that they print (kubectl describe, events, get pods, traces, JSON logs),
for workloads of these tests' own making."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.eval import load_scenario, scenario_context
from agent.offline import diagnose, kube, structured
from agent.types import ActionKind, Category, Diagnosis, Observations
from tests.unit.test_offline_rules import (
    FLAT_CPU,
    cited,
    incident,
    series,
)

CRASH_LOOPING = {"alertname": "KubePodCrashLooping", "reason": "CrashLoopBackOff"}


def describe_pod(
    name: str,
    *,
    state: list[str],
    last: list[str] | None = None,
    restarts: int = 0,
    limits: dict[str, str] | None = None,
    controlled_by: str | None = "ReplicaSet/{rs}",
    command: list[str] | None = None,
    events: list[str] | None = None,
    init: bool = False,
) -> list[str]:
    """`kubectl describe pod` output in the layout kubectl prints it."""
    rs = name.rsplit("-", 1)[0]
    lines = [f"Name:             {name}", "Namespace:        prod", "Status:           Running"]
    if controlled_by:
        lines.append(f"Controlled By:  {controlled_by.format(rs=rs)}")
    lines.append("Init Containers:" if init else "Containers:")
    lines += ["  app:", "    Image:          registry.example.com/shop/app:3.2.0"]
    if command:
        lines += ["    Command:", *(f"      {part}" for part in command)]
    lines += [f"    State:          {state[0]}", *(f"      {x}" for x in state[1:])]
    if last:
        lines += [f"    Last State:     {last[0]}", *(f"      {x}" for x in last[1:])]
    lines += ["    Ready:          False", f"    Restart Count:  {restarts}"]
    if limits:
        lines += ["    Limits:", *(f"      {k}:  {v}" for k, v in limits.items())]
    lines += [
        "Events:",
        "  Type     Reason     Age                From     Message",
        "  ----     ------     ----               ----     -------",
        *(events or []),
    ]
    return lines


# ------------------------------------------------------------------------ OOMKilled


def test_a_container_oomkilled_after_running_a_while_is_a_leak_to_restart() -> None:
    # kubernetes.io "Assign Memory Resources": Last State Terminated, Reason OOMKilled, 137.
    obs = Observations(
        kubernetes=describe_pod(
            "ledger-api-5f9c7d8b6-q2x7z",
            state=["Running", "Started:      Sat, 05 Dec 2026 10:20:31 +0000"],
            last=[
                "Terminated",
                "Reason:       OOMKilled",
                "Exit Code:    137",
                "Started:      Sat, 05 Dec 2026 06:02:11 +0000",
                "Finished:     Sat, 05 Dec 2026 10:20:29 +0000",
            ],
            restarts=4,
            limits={"cpu": "500m", "memory": "512Mi"},
        )
    )
    d = diagnose(incident("ledger-api", "Pod is crash looping", labels=CRASH_LOOPING), obs)
    assert (d.category, d.action) == (Category.MEMORY_LEAK, ActionKind.RESTART)
    assert "Reason:       OOMKilled" in cited(d)
    assert "memory:  512Mi" in cited(d)
    assert d.confidence >= 0.6
    assert_quotes_are_exact_in(d, obs)


def test_a_container_killed_for_memory_the_second_it_starts_needs_a_human() -> None:
    obs = Observations(
        kubernetes=describe_pod(
            "thumbs-7d4b9c6f5-kk2lp",
            command=["python", "-c", "bytearray(2 * 1024 ** 3)"],
            state=["Waiting", "Reason:       CrashLoopBackOff"],
            last=[
                "Terminated",
                "Reason:       OOMKilled",
                "Exit Code:    137",
                "Started:      Sat, 05 Dec 2026 10:20:31 +0000",
                "Finished:     Sat, 05 Dec 2026 10:20:31 +0000",
            ],
            restarts=9,
            limits={"memory": "256Mi"},
        )
    )
    d = diagnose(incident("thumbs", "Pod is crash looping", labels=CRASH_LOOPING), obs)
    assert (d.category, d.action) == (Category.MEMORY_LEAK, ActionKind.NONE)
    assert "bytearray(2 * 1024 ** 3)" in cited(d)


# ------------------------------------------------------------------------ image pulls


def test_an_image_that_cannot_be_pulled_is_a_bad_rollout_rolled_back_when_managed() -> None:
    # kubelet events for a tag that does not exist (containerd's "not found").
    image = "registry.example.com/shop/cart:4.0.0-rc9"
    failed = (
        f'  Warning  Failed     12s (x3 over 50s)  kubelet  Failed to pull image "{image}": '
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
        f'failed to resolve reference "{image}": {image}: not found'
    )
    obs = Observations(
        kubernetes=[
            *describe_pod(
                "cart-6c8f7b9d4-m5n6p",
                state=["Waiting", "Reason:       ImagePullBackOff"],
                events=[
                    failed,
                    "  Warning  Failed     12s (x3 over 50s)  kubelet  Error: ErrImagePull",
                    f'  Normal   BackOff    1s (x4 over 49s)   kubelet  Back-off pulling image "{image}"',
                    "  Warning  Failed     1s (x4 over 49s)   kubelet  Error: ImagePullBackOff",
                ],
            ),
            "Annotations:            deployment.kubernetes.io/revision: 7",
        ]
    )
    d = diagnose(incident("cart", "Deployment replicas mismatch"), obs)
    assert (d.category, d.action) == (Category.BAD_DEPLOY, ActionKind.ROLLBACK)
    assert "ImagePullBackOff" in cited(d)
    assert "Failed to pull image" in cited(d) or "not found" in cited(d)


def test_an_image_pull_for_a_bare_pod_has_nothing_to_roll_back() -> None:
    obs = Observations(
        kubernetes=describe_pod(
            "debug-shell",
            controlled_by=None,
            state=["Waiting", "Reason:       ErrImagePull"],
            events=[
                '  Warning  Failed  5s  kubelet  Failed to pull image "privreg.internal/tools:1": '
                'failed to resolve reference "privreg.internal/tools:1": failed to do request: '
                'Head "https://privreg.internal/v2/tools/manifests/1": dial tcp: lookup '
                "privreg.internal on 10.96.0.10:53: no such host",
            ],
        )
    )
    d = diagnose(incident("debug-shell", "Pod not ready"), obs)
    assert (d.category, d.action) == (Category.BAD_DEPLOY, ActionKind.NONE)
    assert "no such host" in cited(d)


# ------------------------------------------------------------------------ start-up failures


def test_an_init_container_whose_command_is_missing_is_a_crash_loop() -> None:
    # runc's message when the command is not in the image, as kubelet reports it.
    obs = Observations(
        kubernetes=[
            "migrate-db-5b6c7d8e9f-a1b2c   0/1     Init:CrashLoopBackOff   5 (30s ago)   4m",
            *describe_pod(
                "migrate-db-5b6c7d8e9f-a1b2c",
                init=True,
                state=["Waiting", "Reason:       RunContainerError"],
                last=[
                    "Terminated",
                    "Reason:       StartError",
                    "Message:      failed to create containerd task: failed to create shim "
                    "task: OCI runtime create failed: runc create failed: unable to start "
                    'container process: exec: "flyway-migrate": executable file not found in '
                    "$PATH: unknown",
                    "Exit Code:    128",
                ],
                restarts=5,
            ),
        ]
    )
    d = diagnose(incident("migrate-db", "Pod is crash looping", labels=CRASH_LOOPING), obs)
    assert (d.category, d.action) == (Category.CRASH_LOOP, ActionKind.NONE)
    assert 'exec: "flyway-migrate": executable file not found' in cited(d)


def test_a_missing_secret_key_is_a_crash_loop_not_a_restart() -> None:
    obs = Observations(
        kubernetes=describe_pod(
            "billing-84d9c7b6f5-zz9yx",
            state=["Waiting", "Reason:       CreateContainerConfigError"],
            events=[
                "  Warning  Failed  3s (x6 over 70s)  kubelet  Error: couldn't find key "
                "STRIPE_KEY in Secret prod/billing-secrets",
            ],
        )
    )
    d = diagnose(incident("billing", "Pod not ready"), obs)
    assert d.category is Category.CRASH_LOOP
    assert d.action is ActionKind.NONE
    assert "CreateContainerConfigError" in cited(d)


# ------------------------------------------------------------------------ probes


def test_liveness_probe_refused_names_the_probe_not_unknown() -> None:
    # kubelet prober event text.
    obs = Observations(
        kubernetes=describe_pod(
            "search-7f6e5d4c3b-p0o9i",
            state=["Running"],
            restarts=6,
            events=[
                '  Warning  Unhealthy  8s (x9 over 2m)  kubelet  Liveness probe failed: Get "http://'
                '10.244.2.7:8081/healthz": dial tcp 10.244.2.7:8081: connect: connection refused',
                "  Normal   Killing    8s (x3 over 2m)  kubelet  Container app failed liveness "
                "probe, will be restarted",
            ],
        )
    )
    d = diagnose(incident("search", "Pod restarting"), obs)
    assert d.category is Category.CRASH_LOOP
    assert "Liveness probe failed" in cited(d)


# ------------------------------------------------------------------------ network and config


def test_dns_timeouts_under_a_deny_egress_policy_are_the_policy_change() -> None:
    # `kubectl describe networkpolicy` for a policy with an empty egress list.
    obs = Observations(
        logs=[
            "Error: getaddrinfo EAI_AGAIN inventory.shop.svc.cluster.local",
            "Error: getaddrinfo EAI_AGAIN inventory.shop.svc.cluster.local",
            "Error: getaddrinfo EAI_AGAIN inventory.shop.svc.cluster.local",
        ],
        kubernetes=[
            "Name:         lockdown",
            "Namespace:    shop",
            "Spec:",
            "  PodSelector:     <none> (Allowing the specific traffic to all pods in this "
            "namespace)",
            "  Not affecting ingress traffic",
            "  Allowing egress traffic:",
            "    <none> (Selected pods are isolated for egress connectivity)",
            "  Policy Types: Egress",
        ],
    )
    d = diagnose(incident("storefront", "storefront cannot reach inventory"), obs)
    assert (d.category, d.action) == (Category.BAD_DEPLOY, ActionKind.NONE)
    assert "isolated for egress connectivity" in cited(d)
    assert "EAI_AGAIN inventory.shop.svc.cluster.local" in cited(d)


def test_a_host_from_the_pods_own_env_that_does_not_exist_is_bad_config() -> None:
    obs = Observations(
        logs=[
            'psycopg2.OperationalError: could not translate host name "pgsql-primry.db" to '
            "address: Name or service not known",
        ],
        kubernetes=[
            *describe_pod("reports-6d5c4b3a2f-r4t5y", state=["Running"]),
            "    Environment:",
            "      DATABASE_HOST:  pgsql-primry.db",
            "      LOG_LEVEL:      info",
            "Annotations:  deployment.kubernetes.io/revision: 1",
        ],
    )
    d = diagnose(incident("reports", "reports errors"), obs)
    assert (d.category, d.action) == (Category.BAD_DEPLOY, ActionKind.NONE)
    assert "DATABASE_HOST:  pgsql-primry.db" in cited(d)


def test_a_host_that_does_not_resolve_outside_the_config_is_a_dependency() -> None:
    obs = Observations(
        logs=[
            "java.net.UnknownHostException: api.partner-rates.example: Name or service not known",
            "\tat java.base/java.net.InetAddress.getAllByName0(InetAddress.java:1380)",
        ],
        metrics={"cpu_utilization_pct": FLAT_CPU},
    )
    d = diagnose(incident("quotes", "quotes 5xx"), obs)
    assert d.category is Category.DEPENDENCY_DOWN
    assert "UnknownHostException: api.partner-rates.example" in cited(d)


# ------------------------------------------------------------------------ jobs


def test_a_failed_job_is_never_restarted() -> None:
    # kube-state-metrics' KubeJobFailed labels the job with `job_name`; job-controller events.
    obs = Observations(
        logs=[
            'psql: error: connection to server at "warehouse-db" (10.0.4.12), port 5432 '
            "failed: Connection refused",
        ],
        kubernetes=[
            "Name:             nightly-export",
            "Backoff Limit:    2",
            "Pods Statuses:    0 Active (0 Ready) / 0 Succeeded / 3 Failed",
            "  Warning  BackoffLimitExceeded  2m  job-controller  Job has reached the "
            "specified backoff limit",
        ],
    )
    d = diagnose(
        incident("nightly-export", "Job failed", labels={"job_name": "nightly-export"}), obs
    )
    assert d.category is Category.DEPENDENCY_DOWN
    assert d.action is ActionKind.NONE


# ------------------------------------------------------------------------ traces, JSON, CPU


def test_a_trace_whose_time_is_one_query_is_database_latency() -> None:
    obs = Observations(
        logs=[
            "GET /api/orders (orders-api) - 5120.40ms (span_id=aa01)",
            "├─ authz.check (orders-api) - 12.10ms (span_id=aa02)",
            "├─ mysql.query (orders-api) - 4980.77ms (span_id=aa03)",
            "│    db.system: mysql",
            "│    db.statement: SELECT * FROM order_lines WHERE customer_ref = ?",
        ],
    )
    d = diagnose(incident("orders-api", "orders-api p95 latency high"), obs)
    assert (d.category, d.action) == (Category.DB_LATENCY, ActionKind.NONE)
    assert "mysql.query (orders-api) - 4980.77ms" in cited(d)
    assert "SELECT * FROM order_lines" in cited(d)


def test_json_pool_gauges_at_their_maximum_are_connection_exhaustion() -> None:
    line = (
        '{"level":"ERROR","ts":"2026-12-05T10:01:02Z","message":"request failed",'
        '"active_connections":40,"max_connections":40,"pool_usage_percent":100}'
    )
    obs = Observations(logs=['{"level":"INFO","message":"ok","active_connections":12}', line])
    [_, record] = structured.records(obs.logs)
    assert record.is_error and structured.gauge(record, "max_connections") == 40
    d = diagnose(incident("payments", "payments errors"), obs)
    assert d.category is Category.DB_CONNECTION_EXHAUSTION
    assert '"pool_usage_percent":100' in cited(d)


def test_pino_numeric_levels_are_read() -> None:
    logs = ['{"level":50,"msg":"boom"}', '{"level":30,"msg":"fine","responseTime":4200.5}']
    error, info = structured.records(logs)
    assert (error.is_error, error.message) == (True, "boom")
    assert (info.is_error, info.latency_ms()) == (False, 4200.5)


def test_a_container_pinned_at_its_cpu_limit_and_throttled_is_cpu_saturation() -> None:
    obs = Observations(
        kubernetes=[
            *describe_pod("render-5c4b3a2f1e-t6y7u", state=["Running"], limits={"cpu": "1"}),
            "NAME                        CPU(cores)   MEMORY(bytes)",
            "render-5c4b3a2f1e-t6y7u     998m         301Mi",
        ],
        metrics={"container_cpu_cfs_throttled_ratio": series(*[0.1] * 4 + [0.62] * 8)},
    )
    d = diagnose(incident("render", "render slow"), obs)
    assert d.category is Category.CPU_SATURATION
    assert "998m" in cited(d)


def test_workload_facts_from_describe_output() -> None:
    f = kube.facts(
        Observations(
            kubernetes=[
                "Annotations:            deployment.kubernetes.io/revision: 3",
                "OldReplicaSets:  web-6f5d4c3b2a (0/0 replicas created)",
                "NewReplicaSet:   web-7a6b5c4d3e (3/3 replicas created)",
            ]
        )
    )
    assert f.workload.revision == 3
    assert f.workload.can_roll_back is True
    first = kube.facts(Observations(kubernetes=["OldReplicaSets:  <none>"]))
    assert first.workload.can_roll_back is False


# ------------------------------------------------------------------------ leads


def test_a_weak_lead_is_named_with_low_confidence_instead_of_unknown() -> None:
    obs = Observations(
        kubernetes=describe_pod(
            "feed-5b4a3c2d1e-y8u7i",
            state=["Running"],
            events=[
                '  Warning  Unhealthy  3s (x4 over 60s)  kubelet  Readiness probe failed: Get "'
                'http://10.244.0.9:9000/ready": context deadline exceeded (Client.Timeout '
                "exceeded while awaiting headers)",
            ],
        )
    )
    d = diagnose(incident("feed", "feed not ready"), obs)
    assert d.category is not Category.UNKNOWN
    assert d.confidence < 0.35
    assert d.action is ActionKind.NONE
    assert "Readiness probe failed" in cited(d)


def assert_quotes_are_exact_in(d: Diagnosis, obs: Observations) -> None:
    """Every quote is a substring of one line the tools returned, and at least two are given."""
    assert len(d.evidence) >= 2
    lines = {"logs": obs.logs, "kubernetes": obs.kubernetes}
    for e in d.evidence:
        if e.tool in lines:
            assert any(e.quote in line for line in lines[e.tool]), e.quote


# ------------------------------------------------------------------------ scheduling, mounts


def test_pods_the_scheduler_cannot_place_are_a_bad_rollout() -> None:
    # kube-scheduler's FailedScheduling message for requests no node can satisfy.
    obs = Observations(
        kubernetes=[
            "Name:             analytics-6f5e4d3c2b-h8j7k",
            "Status:           Pending",
            "Controlled By:  ReplicaSet/analytics-6f5e4d3c2b",
            "Containers:",
            "  analytics:",
            "    Requests:",
            "      cpu:     500m",
            "      memory:  64Gi",
            "Events:",
            "  Type     Reason            Age   From               Message",
            "  Warning  FailedScheduling  2m    default-scheduler  0/4 nodes are available: 4 "
            "Insufficient memory. preemption: 0/4 nodes are available: 4 No preemption victims "
            "found for incoming pod.",
            "Annotations:            deployment.kubernetes.io/revision: 9",
        ]
    )
    d = diagnose(incident("analytics", "Deployment replicas mismatch"), obs)
    assert (d.category, d.action) == (Category.BAD_DEPLOY, ActionKind.ROLLBACK)
    assert "Insufficient memory" in cited(d)
    assert "memory:  64Gi" in cited(d)


def test_a_configmap_the_pod_mounts_that_does_not_exist_is_a_start_up_failure() -> None:
    obs = Observations(
        kubernetes=[
            "Name:             mailer-5d4c3b2a1f-n5m6b",
            "Status:           Pending",
            "  Warning  FailedMount  15s (x8 over 80s)  kubelet  MountVolume.SetUp failed for "
            'volume "settings" : configmap "mailer-settings" not found',
        ]
    )
    d = diagnose(incident("mailer", "Pod not ready"), obs)
    assert (d.category, d.action) == (Category.CRASH_LOOP, ActionKind.NONE)
    assert 'configmap "mailer-settings" not found' in cited(d)


def test_a_liveness_probe_on_a_port_the_app_does_not_listen_on_is_a_bad_spec() -> None:
    obs = Observations(
        logs=["INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)"],
        kubernetes=[
            *describe_pod(
                "pricing-7b6a5c4d3e-w2e3r",
                state=["Running"],
                restarts=5,
                events=[
                    '  Warning  Unhealthy  5s (x12 over 3m)  kubelet  Liveness probe failed: Get "'
                    'http://10.244.1.7:8080/health": dial tcp 10.244.1.7:8080: connect: connection '
                    "refused"
                ],
            ),
            "Annotations:            deployment.kubernetes.io/revision: 4",
        ],
    )
    d = diagnose(incident("pricing", "Pod restarting"), obs)
    assert (d.category, d.action) == (Category.BAD_DEPLOY, ActionKind.ROLLBACK)
    assert "8000" in d.root_cause and "8080" in d.root_cause
    assert "Uvicorn running on http://0.0.0.0:8000" in cited(d)


def test_the_cpu_throttling_alert_alone_names_cpu_saturation() -> None:
    d = diagnose(
        incident(
            "render",
            "Processes experience elevated CPU throttling.",
            labels={"alertname": "CPUThrottlingHigh", "container": "render"},
            annotations={
                "description": "62% throttling of CPU in namespace prod for container "
                "render in pod render-5c4b3a2f1e-t6y7u."
            },
        ),
        Observations(),
    )
    assert d.category is Category.CPU_SATURATION
    assert "throttling of CPU" in cited(d) or "CPUThrottlingHigh" in cited(d)


def test_an_eviction_for_node_memory_names_the_memory_hungry_container() -> None:
    obs = Observations(
        kubernetes=[
            "  Warning  Evicted  3m  kubelet  The node was low on resource: memory. Threshold "
            "quantity: 100Mi, available: 91Mi. Container indexer was using 3512Mi, request is "
            "256Mi, has larger consumption of memory.",
        ]
    )
    d = diagnose(incident("indexer", "Pod evicted"), obs)
    assert d.category is Category.MEMORY_LEAK
    assert "low on resource: memory" in cited(d)


def test_the_waiting_reason_of_a_kubecontainerwaiting_alert_is_a_lead_by_itself() -> None:
    d = diagnose(
        incident(
            "ledger",
            "Pod container waiting longer than 1 hour",
            labels={"alertname": "KubeContainerWaiting", "reason": "ImagePullBackOff"},
        ),
        Observations(),
    )
    assert d.category is Category.BAD_DEPLOY
    assert d.action is ActionKind.NONE  # nothing shows an earlier revision to go back to
    assert "ImagePullBackOff" in cited(d)


def test_an_eviction_for_ephemeral_storage_is_a_full_disk_for_a_human() -> None:
    # The kubelet's eviction message for node ephemeral storage.
    obs = Observations(
        kubernetes=[
            "Status:           Failed",
            "Reason:           Evicted",
            "Message:          The node was low on resource: ephemeral-storage. Threshold "
            "quantity: 10Gi, available: 8123456Ki. Container spool was using 41Gi, request is "
            "0, has larger consumption of ephemeral-storage.",
        ]
    )
    d = diagnose(incident("spool", "Pod evicted"), obs)
    assert (d.category, d.action) == (Category.DISK_FULL, ActionKind.NONE)
    assert "low on resource: ephemeral-storage" in cited(d)


K8S_SCENARIOS = Path(__file__).resolve().parents[3] / "shared" / "scenarios-k8s"


@pytest.mark.skipif(not K8S_SCENARIOS.is_dir(), reason="shared/scenarios-k8s not checked out")
def test_kubectl_output_from_the_kubernetes_tool_reads_as_it_does_pasted_in_logs() -> None:
    """Live, kubectl's view comes from the kubernetes tool, not the logs: same answers."""
    for path in sorted(K8S_SCENARIOS.glob("*.json")):
        s = load_scenario(path)
        o = s.observations
        as_logs = Observations(
            logs=list(o.logs), metrics={k: list(v) for k, v in o.metrics.items()}
        )
        as_tool = Observations(kubernetes=list(o.logs), metrics=as_logs.metrics)
        ctx = scenario_context(s)
        logs_d, tool_d = diagnose(ctx, as_logs), diagnose(ctx, as_tool)
        assert (tool_d.category, tool_d.action) == (logs_d.category, logs_d.action), s.id
