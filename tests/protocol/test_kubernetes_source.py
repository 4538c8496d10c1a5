"""The Kubernetes source (kubernetes_asyncio, the executor's client) against the fake API server:
what it reads for a Deployment and a Job, how the investigation's tool and the offline rules
use it, and how API failures surface."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.offline import diagnose
from agent.pipeline import DiagnosisPipeline
from agent.redact import Redactor
from agent.sources import Sources
from agent.tools import Toolbox, ToolStatus, build_tools
from agent.types import ActionKind, Category, DiagnosisSource, IncidentContext, Observations
from bot.app.config import load_config
from bot.app.wiring import sources_for
from integrations.alerts import Alert, AlertStatus, Severity
from integrations.errors import PermanentError, TransientError
from integrations.observability.kubernetes import KubernetesSource
from tests.fakes.action_servers import FakeKubernetes

OOM_STATUS = {
    "name": "checkout",
    "image": "shop/checkout:2.3.0",
    "imageID": "sha256:1",
    "ready": True,
    "restartCount": 4,
    "state": {"running": {"startedAt": "2026-12-05T10:20:31Z"}},
    "lastState": {
        "terminated": {
            "exitCode": 137,
            "reason": "OOMKilled",
            "startedAt": "2026-12-05T06:02:11Z",
            "finishedAt": "2026-12-05T10:20:29Z",
        }
    },
}
CHECKOUT = {
    "name": "checkout",
    "image": "shop/checkout:2.3.0",
    "resources": {"limits": {"memory": "512Mi", "cpu": "1"}, "requests": {"memory": "256Mi"}},
}


def source(fake: FakeKubernetes, **kwargs: Any) -> KubernetesSource:
    return KubernetesSource("prod", api_url=fake.url, token=fake.token, **kwargs)


def checkout_oomkilled(fake: FakeKubernetes) -> None:
    fake.add_deployment("checkout", "prod", replicas=2)
    fake.add_replicaset("checkout", "checkout-5d8f7c9b6", 2, "prod")
    fake.add_replicaset("checkout", "checkout-7c9d8b5f4", 3, "prod")
    fake.add_pod(
        "checkout-7c9d8b5f4-x2v4q",
        namespace="prod",
        labels={"app": "checkout"},
        owner=("ReplicaSet", "checkout-7c9d8b5f4"),
        container=CHECKOUT,
        status=OOM_STATUS,
    )
    fake.add_event(
        "checkout-7c9d8b5f4-x2v4q",
        "BackOff",
        "Back-off restarting failed container checkout in pod checkout-7c9d8b5f4-x2v4q",
        count=5,
        namespace="prod",
    )
    fake.previous_logs[("prod", "checkout-7c9d8b5f4-x2v4q", "checkout")] = (
        "INFO serving on :8080\nWARN image cache holds 48213 entries and growing\n"
    )


def context(service: str) -> IncidentContext:
    alert = Alert(
        source="alertmanager",
        group_key=service,
        fingerprint=service,
        status=AlertStatus.FIRING,
        title="Pod is crash looping.",
        severity=Severity.WARNING,
        starts_at=datetime(2026, 12, 5, tzinfo=UTC),
        service=service,
        labels={"alertname": "KubePodCrashLooping", "pod": f"{service}-7c9d8b5f4-x2v4q"},
    )
    return IncidentContext(
        title=alert.title,
        alerts=[alert],
        service=service,
        allowed_actions=[ActionKind.RESTART, ActionKind.ROLLBACK],
        labels=alert.labels,
    )


async def test_a_deployment_reads_as_kubectl_describe_with_history_events_and_logs(
    fake_kubernetes: FakeKubernetes,
) -> None:
    checkout_oomkilled(fake_kubernetes)

    lines = await source(fake_kubernetes, deployment="checkout").state()

    text = "\n".join(lines)
    assert "deployment.kubernetes.io/revision: 3" in text
    assert "OldReplicaSets:  checkout-5d8f7c9b6 (revision 2)" in text
    assert "Controlled By:  ReplicaSet/checkout-7c9d8b5f4" in text
    for expected in ("Reason:       OOMKilled", "Exit Code:    137", "Restart Count:  4"):
        assert expected in text
    assert "memory:  512Mi" in text
    assert "Back-off restarting failed container checkout" in text
    assert "image cache holds 48213 entries and growing" in text  # kubectl logs --previous
    [pods_call] = [r for r in fake_kubernetes.requests if r.path.endswith("/pods")]
    assert pods_call.query["labelSelector"] == "app=checkout"
    assert all(r.headers["authorization"] == "Bearer test-token" for r in fake_kubernetes.requests)

    d = diagnose(context("checkout"), Observations(kubernetes=lines))
    assert (d.category, d.action) == (Category.MEMORY_LEAK, ActionKind.RESTART)
    assert {e.tool for e in d.evidence} >= {"kubernetes"}


async def test_rollback_is_proposed_only_when_an_earlier_revision_exists(
    fake_kubernetes: FakeKubernetes,
) -> None:
    fake_kubernetes.add_deployment("crm", "prod")
    fake_kubernetes.add_replicaset("crm", "crm-6b7c8d9f5", 1, "prod")
    pull = {
        "name": "crm",
        "image": "shop/crm:latest",
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}},
    }
    fake_kubernetes.add_pod(
        "crm-6b7c8d9f5-q8w7e",
        namespace="prod",
        labels={"app": "crm"},
        owner=("ReplicaSet", "crm-6b7c8d9f5"),
        container={"name": "crm", "image": "shop/crm:latest"},
        status=pull,
        phase="Pending",
    )
    fake_kubernetes.add_event(
        "crm-6b7c8d9f5-q8w7e",
        "Failed",
        'Failed to pull image "shop/crm:latest": rpc error: code = NotFound desc = failed to '
        'pull and unpack image "docker.io/shop/crm:latest": failed to resolve reference '
        '"docker.io/shop/crm:latest": docker.io/shop/crm:latest: not found',
        count=3,
        namespace="prod",
    )
    only_revision = await source(fake_kubernetes, deployment="crm").state()
    d = diagnose(context("crm"), Observations(kubernetes=only_revision))
    assert (d.category, d.action) == (Category.BAD_DEPLOY, ActionKind.NONE)
    assert "OldReplicaSets:  <none>" in only_revision

    fake_kubernetes.add_replicaset("crm", "crm-5a6b7c8d4", 2, "prod")
    fake_kubernetes.replicasets[0]["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"
    ] = "2"  # the failing pods' ReplicaSet is now the newest revision
    fake_kubernetes.replicasets[1]["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"
    ] = "1"
    with_history = await source(fake_kubernetes, deployment="crm").state()
    d = diagnose(context("crm"), Observations(kubernetes=with_history))
    assert (d.category, d.action) == (Category.BAD_DEPLOY, ActionKind.ROLLBACK)


async def test_a_failed_job_shows_its_backoff_limit_and_pods_by_job_name(
    fake_kubernetes: FakeKubernetes,
) -> None:
    fake_kubernetes.add_job("nightly-export", "prod", backoff_limit=1, failed=2)
    fake_kubernetes.add_pod(
        "nightly-export-k4m2p",
        namespace="prod",
        labels={"job-name": "nightly-export"},
        owner=("Job", "nightly-export"),
        container={"name": "export", "image": "shop/export:9"},
        status={
            "name": "export",
            "image": "shop/export:9",
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 2, "reason": "Error"}},
        },
        phase="Failed",
    )
    lines = await source(fake_kubernetes, job="nightly-export").state()
    text = "\n".join(lines)
    assert "Backoff Limit:    1" in text
    assert "/ 2 Failed" in text
    assert "BackoffLimitExceeded" in text
    assert "Exit Code:    2" in text
    assert "Controlled By:  Job/nightly-export" in text


async def test_api_failures_are_integration_errors(fake_kubernetes: FakeKubernetes) -> None:
    with pytest.raises(PermanentError, match="not found"):
        await source(fake_kubernetes, deployment="missing").state()
    with pytest.raises(PermanentError, match="Unauthorized"):
        await KubernetesSource(
            "prod", deployment="checkout", api_url=fake_kubernetes.url, token="wrong"
        ).state()
    fake_kubernetes.fail_with = 503
    with pytest.raises(TransientError):
        await source(fake_kubernetes, selector="app=x").state()


async def test_the_investigation_tool_reads_and_greps_the_workload(
    fake_kubernetes: FakeKubernetes,
) -> None:
    checkout_oomkilled(fake_kubernetes)
    sources = Sources(kubernetes=source(fake_kubernetes, deployment="checkout"))
    toolbox = Toolbox(build_tools(sources, "sig", 4000), Redactor())

    result = await toolbox.run("kubernetes", '{"grep": "OOMKilled|Restart Count"}')

    assert result.status is ToolStatus.SUCCESS
    assert result.data.splitlines() == ["      Reason:       OOMKilled", "    Restart Count:  4"]


async def test_a_live_incident_of_a_configured_service_reads_its_workload(
    fake_kubernetes: FakeKubernetes, tmp_path: Path
) -> None:
    checkout_oomkilled(fake_kubernetes)
    config = tmp_path / "opsbot.yaml"
    config.write_text(
        "services:\n"
        "  checkout:\n"
        "    kubernetes: {namespace: prod, deployment: checkout, "
        f"api_url: '{fake_kubernetes.url}', token: {fake_kubernetes.token}}}\n"
    )
    cfg = load_config(config)
    ctx = context("checkout")
    assert cfg.service_for(ctx.labels) == "checkout"  # from the pod name

    result = await DiagnosisPipeline(None, None).run(ctx, sources_for(cfg, "checkout"))

    d = result.diagnosis
    assert d.source is DiagnosisSource.OFFLINE
    assert "kubernetes" in d.tool_calls
    assert (d.category, d.action) == (Category.MEMORY_LEAK, ActionKind.RESTART)
    assert any(e.tool == "kubernetes" and "OOMKilled" in e.quote for e in d.evidence)
