"""Action executors against real targets: real processes, a recording HTTP endpoint, moto's ECS
server, and fake Kubernetes and Docker Engine API servers reached by their real clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from integrations.actions import (
    ActionParams,
    DockerExecutor,
    EcsExecutor,
    HttpExecutor,
    KubernetesExecutor,
    ShellExecutor,
)
from integrations.errors import PermanentError, RateLimited, TransientError
from tests.fakes.action_servers import FakeDocker, FakeKubernetes, RecordingHttp

RESTART = ActionParams(action="restart", service="checkout", requested_by="ravi", incident_id="42")

# ---------------------------------------------------------------- shell


SERVICE = """
import http.server, os, sys
port, pidfile = int(sys.argv[1]), sys.argv[2]
class Pid(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Pid)
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pidfile + ".tmp", pidfile)
server.serve_forever()
"""

# A naive restart script: the new process inherits its stdout, as `nohup service &` would.
RESTART_SCRIPT = """
import os, signal, socket, subprocess, sys, time, urllib.request
service, state = sys.argv[1], sys.argv[2]
port = int(open(f"{state}/{service}.port").read())
pidfile = f"{state}/{service}.pid"
old = int(open(pidfile).read())
os.kill(old, signal.SIGTERM)
for _ in range(200):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) != 0:
            break
    time.sleep(0.02)
new = subprocess.Popen(
    [sys.executable, f"{state}/service.py", str(port), pidfile], start_new_session=True
)
for _ in range(200):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
            if int(answer.read()) == new.pid:
                break
    except OSError:
        pass
    time.sleep(0.02)
else:
    sys.exit(f"{service} did not come back")
print(f"{service} restarted for {os.environ['OPSBOT_REQUESTED_BY']}: pid {old} -> {new.pid}")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(250):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def _pid_answering(port: int) -> int | None:
    try:
        async with httpx.AsyncClient() as client:
            return int((await client.get(f"http://127.0.0.1:{port}/", timeout=1)).text)
    except httpx.HTTPError:
        return None


@pytest.fixture
async def running_service(tmp_path: Path) -> AsyncIterator[tuple[Path, int]]:
    port = _free_port()
    (tmp_path / "service.py").write_text(SERVICE)
    (tmp_path / "restart.py").write_text(RESTART_SCRIPT)
    (tmp_path / "checkout.port").write_text(str(port))
    pidfile = tmp_path / "checkout.pid"
    first = await asyncio.create_subprocess_exec(
        sys.executable, str(tmp_path / "service.py"), str(port), str(pidfile)
    )

    async def answering() -> bool:
        return await _pid_answering(port) == first.pid

    try:
        await _until(answering, "the service answers")
        yield tmp_path, port
    finally:
        for pid in {first.pid, int(pidfile.read_text())}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        await first.wait()


async def test_shell_restart_brings_the_service_back_with_a_new_pid(
    running_service: tuple[Path, int],
) -> None:
    state, port = running_service
    old_pid = await _pid_answering(port)
    assert old_pid is not None
    executor = ShellExecutor(
        [sys.executable, str(state / "restart.py"), "{service}", str(state)], timeout_s=30
    )

    result = await executor.run(RESTART)

    new_pid = await _pid_answering(port)
    assert result.ok, result
    assert new_pid is not None and new_pid != old_pid
    assert (
        result.summary
        == f"restart checkout: checkout restarted for ravi: pid {old_pid} -> {new_pid}"
    )
    assert result.duration_s > 0


async def test_shell_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    child_pidfile = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(child_pidfile)!r}, "w").write(str(child.pid))
        print("waiting for the lock", flush=True)
        time.sleep(60)
    """)
    executor = ShellExecutor([sys.executable, "-c", script], timeout_s=1.5)

    result = await executor.run(RESTART)

    assert not result.ok
    assert result.summary == "restart checkout: timed out after 1.5 s"
    assert "waiting for the lock" in result.output
    child = int(child_pidfile.read_text())

    async def child_gone() -> bool:
        return not _alive(child)

    await _until(child_gone, "the command's child was killed")


async def test_shell_nonzero_exit_reports_the_tail_of_stderr() -> None:
    script = (
        "import sys; print('stopping'); sys.stderr.write('noise\\nboom: disk full\\n'); sys.exit(3)"
    )
    result = await ShellExecutor([sys.executable, "-c", script], timeout_s=10).run(RESTART)

    assert not result.ok
    assert result.summary == "restart checkout: failed with exit 3: boom: disk full"
    assert "stopping" in result.output and "boom: disk full" in result.output


async def test_shell_keeps_the_tail_of_long_output() -> None:
    script = "print('head' + 'x' * 10000 + 'the end')"
    result = await ShellExecutor([sys.executable, "-c", script], 10, output_budget=100).run(RESTART)

    assert result.ok
    assert len(result.output) <= 100
    assert result.output.rstrip().endswith("the end") and "head" not in result.output


@pytest.mark.parametrize(
    ("service", "replicas"),
    [("checkout; rm -rf /", None), ("$(reboot)", None), ("--force", None), ("checkout", None)],
)
async def test_shell_refuses_unsafe_or_missing_placeholders(
    tmp_path: Path, service: str, replicas: int | None
) -> None:
    marker = tmp_path / "ran"
    argv = ["touch", str(marker), "{service}", "--replicas={replicas}"]
    params = ActionParams(action="scale_up", service=service, replicas=replicas)

    result = await ShellExecutor(argv, timeout_s=10).run(params)

    assert not result.ok
    assert result.summary.startswith(f"scale_up {service}: refused:")
    assert not marker.exists()


async def test_shell_runs_with_its_own_env_and_a_minimal_base_not_the_bots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-bot-secret-000000000000")
    monkeypatch.setenv("OPSBOT_ADMIN_TOKEN", "admin-secret-0001")
    monkeypatch.setenv("LANG", "C.UTF-8")
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    executor = ShellExecutor([sys.executable, "-c", script], 10, env={"KUBECONFIG": "/etc/kube"})
    result = await executor.run(RESTART)
    seen = json.loads(result.output)
    assert set(seen) - {"PWD", "SHLVL", "_", "LC_CTYPE"} == {
        "PATH",
        "HOME",
        "LANG",
        "KUBECONFIG",
        "OPSBOT_ACTION",
        "OPSBOT_SERVICE",
        "OPSBOT_INCIDENT",
        "OPSBOT_REQUESTED_BY",
    }
    assert (seen["KUBECONFIG"], seen["LANG"]) == ("/etc/kube", "C.UTF-8")


async def test_shell_missing_command_cannot_be_reached() -> None:
    with pytest.raises(PermanentError):
        await ShellExecutor(["/nonexistent/systemctl", "restart"], timeout_s=10).run(RESTART)


# ---------------------------------------------------------------- http


async def test_http_sends_rendered_url_headers_and_body(recording_http: RecordingHttp) -> None:
    executor = HttpExecutor(
        f"{recording_http.url}/job/{{service}}/buildWithParameters?incident={{incident}}",
        headers={"Authorization": "Bearer deploy-token"},
        body={"service": "{service}", "replicas": "{replicas}", "note": "incident {incident}"},
        timeout_s=5,
    )
    params = ActionParams("scale_up", "checkout", replicas=6, requested_by="ravi", incident_id="42")

    result = await executor.run(params)

    assert result.ok
    assert result.summary == "scale_up checkout: HTTP 200 OK from 127.0.0.1"
    [call] = recording_http.requests
    assert (call.method, call.path, call.query) == (
        "POST",
        "/job/checkout/buildWithParameters",
        {"incident": "42"},
    )
    assert call.headers["authorization"] == "Bearer deploy-token"
    assert call.json() == {"service": "checkout", "replicas": 6, "note": "incident 42"}


async def test_http_4xx_is_a_reported_failure(recording_http: RecordingHttp) -> None:
    recording_http.respond("/rollback/checkout", 404, "no such job: rb-checkout\n")
    executor = HttpExecutor(f"{recording_http.url}/rollback/{{service}}", timeout_s=5)

    result = await executor.run(ActionParams("rollback", "checkout"))

    assert not result.ok
    assert result.summary == (
        "rollback checkout: failed: HTTP 404 Not Found from 127.0.0.1: no such job: rb-checkout"
    )


async def test_http_5xx_429_and_connection_errors_are_transient(
    recording_http: RecordingHttp,
) -> None:
    recording_http.respond("/down", 503, "maintenance")
    recording_http.respond("/busy", 429, "slow down", headers={"Retry-After": "7"})

    with pytest.raises(TransientError, match="503"):
        await HttpExecutor(f"{recording_http.url}/down", timeout_s=5).run(RESTART)
    with pytest.raises(RateLimited) as limited:
        await HttpExecutor(f"{recording_http.url}/busy", timeout_s=5).run(RESTART)
    assert limited.value.retry_after == 7
    with pytest.raises(TransientError):
        await HttpExecutor(f"http://127.0.0.1:{_free_port()}/x", timeout_s=5).run(RESTART)


async def test_http_refuses_injected_service(recording_http: RecordingHttp) -> None:
    executor = HttpExecutor(f"{recording_http.url}/restart/{{service}}", timeout_s=5)

    result = await executor.run(ActionParams("restart", "../admin/drop"))

    assert not result.ok and "refused" in result.summary
    assert recording_http.requests == []


# ---------------------------------------------------------------- kubernetes


def _kubernetes(fake: FakeKubernetes, **kwargs: Any) -> KubernetesExecutor:
    return KubernetesExecutor("checkout", "prod", api_url=fake.url, token=fake.token, **kwargs)


async def test_kubernetes_restart_patches_restarted_at_like_kubectl(
    fake_kubernetes: FakeKubernetes,
) -> None:
    fake_kubernetes.add_deployment("checkout", "prod", replicas=3)

    result = await _kubernetes(fake_kubernetes).run(RESTART)

    assert result.ok, result
    [patch] = fake_kubernetes.calls("PATCH")
    assert patch.path == "/apis/apps/v1/namespaces/prod/deployments/checkout"
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"
    assert patch.headers["authorization"] == "Bearer test-token"
    annotations = patch.json()["spec"]["template"]["metadata"]["annotations"]
    restarted_at = annotations["kubectl.kubernetes.io/restartedAt"]
    assert patch.json() == {
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": restarted_at}}
            }
        }
    }
    assert datetime.fromisoformat(restarted_at).tzinfo is not None
    assert restarted_at in result.summary and "prod/checkout" in result.summary


@pytest.mark.parametrize(
    ("replicas", "delta", "configured", "expected"),
    [(None, None, None, 4), (None, 2, None, 5), (6, None, None, 6), (None, None, 8, 8)],
)
async def test_kubernetes_scale_up_patches_the_scale_subresource(
    fake_kubernetes: FakeKubernetes,
    replicas: int | None,
    delta: int | None,
    configured: int | None,
    expected: int,
) -> None:
    fake_kubernetes.add_deployment("checkout", "prod", replicas=3)
    params = ActionParams("scale_up", "checkout", replicas=replicas, delta=delta)

    result = await _kubernetes(fake_kubernetes, replicas=configured).run(params)

    assert result.ok
    assert result.summary == (
        f"scale_up checkout: scaled deployment prod/checkout from 3 to {expected} replicas"
    )
    [patch] = fake_kubernetes.calls("PATCH")
    assert patch.path == "/apis/apps/v1/namespaces/prod/deployments/checkout/scale"
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.json() == {"spec": {"replicas": expected}}
    assert fake_kubernetes.deployments[("prod", "checkout")]["spec"]["replicas"] == expected


async def test_kubernetes_reported_failures(fake_kubernetes: FakeKubernetes) -> None:
    missing = await _kubernetes(fake_kubernetes).run(RESTART)
    fake_kubernetes.add_deployment("checkout", "prod", paused=True)
    paused = await _kubernetes(fake_kubernetes).run(RESTART)
    rollback = await _kubernetes(fake_kubernetes).run(ActionParams("rollback", "checkout"))
    forbidden = await KubernetesExecutor("checkout", "prod", fake_kubernetes.url, "bad").run(
        RESTART
    )

    assert missing.summary == 'restart checkout: failed: deployments.apps "checkout" not found'
    assert "paused" in paused.summary
    assert "kubectl rollout undo" in rollback.summary
    assert forbidden.summary == "restart checkout: failed: Unauthorized"
    assert not any(r.ok for r in (missing, paused, rollback, forbidden))
    assert fake_kubernetes.calls("PATCH") == []


async def test_kubernetes_unreachable_is_transient(
    fake_kubernetes: FakeKubernetes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_kubernetes.add_deployment("checkout", "prod")
    fake_kubernetes.fail_with = 503
    with pytest.raises(TransientError):
        await _kubernetes(fake_kubernetes).run(RESTART)
    with pytest.raises(TransientError):
        await KubernetesExecutor("checkout", api_url=f"http://127.0.0.1:{_free_port()}").run(
            RESTART
        )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(PermanentError, match="not running in a cluster"):
        await KubernetesExecutor("checkout").run(RESTART)


# ---------------------------------------------------------------- docker


async def test_docker_restart_goes_through_the_engine_api(fake_docker: FakeDocker) -> None:
    fake_docker.add_container("checkout-web", pid=100)

    result = await DockerExecutor("checkout-web", url=fake_docker.url).run(RESTART)

    assert result.ok
    assert result.summary.startswith("restart checkout: container checkout-web restarted: running")
    assert "(pid 101)" in result.summary
    assert [(r.method, r.path) for r in fake_docker.requests] == [
        ("GET", "/version"),
        ("POST", "/v1.45/containers/checkout-web/restart"),
        ("GET", "/v1.45/containers/checkout-web/json"),
    ]


async def test_docker_reported_failures(fake_docker: FakeDocker) -> None:
    fake_docker.add_container("checkout-web")
    fake_docker.crash_on_restart.add("checkout-web")

    crashed = await DockerExecutor("checkout-web", url=fake_docker.url).run(RESTART)
    missing = await DockerExecutor("nope", url=fake_docker.url).run(RESTART)
    scale = await DockerExecutor("checkout-web", url=fake_docker.url).run(
        ActionParams("scale_up", "checkout")
    )

    assert crashed.summary == (
        "restart checkout: container checkout-web restarted but is exited (exit code 137)"
    )
    assert missing.summary == "restart checkout: failed: No such container: nope"
    assert "only restart" in scale.summary
    assert not any(r.ok for r in (crashed, missing, scale))


async def test_docker_unreachable_is_transient(fake_docker: FakeDocker) -> None:
    fake_docker.fail_with = 500
    with pytest.raises(TransientError):
        await DockerExecutor("web", url=fake_docker.url).run(RESTART)
    with pytest.raises(TransientError):
        await DockerExecutor("web", url=f"http://127.0.0.1:{_free_port()}").run(RESTART)
    with pytest.raises(PermanentError):
        await DockerExecutor("web", url="ftp://127.0.0.1").run(RESTART)


# ---------------------------------------------------------------- ecs


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Ecs:
    client: Any
    cluster: str
    endpoint: str

    def executor(self, service: str = "checkout", **kwargs: Any) -> EcsExecutor:
        return EcsExecutor(self.cluster, service, "eu-west-1", endpoint_url=self.endpoint, **kwargs)

    def service(self) -> dict[str, Any]:
        found = self.client.describe_services(cluster=self.cluster, services=["checkout"])
        return found["services"][0]


@pytest.fixture
def ecs(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Ecs:
    """A cluster (named after the test) with a `checkout` service of 2 tasks, on moto; dummy
    credentials, so botocore never looks for real ones."""
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("ecs", region_name="eu-west-1", endpoint_url=moto_endpoint)
    cluster = request.node.name.split("[")[0][-60:]
    client.create_cluster(clusterName=cluster)
    client.register_task_definition(
        family="checkout",
        containerDefinitions=[{"name": "web", "image": "checkout:1", "memory": 128}],
    )
    client.create_service(
        cluster=cluster, serviceName="checkout", taskDefinition="checkout", desiredCount=2
    )
    return Ecs(client, cluster, moto_endpoint)


async def test_ecs_restart_forces_a_new_deployment(ecs: Ecs) -> None:
    before = ecs.service()["deployments"][0]["id"]

    result = await ecs.executor().run(RESTART)

    after = ecs.service()["deployments"][0]["id"]
    assert result.ok
    assert after != before
    assert result.summary == (
        f"restart checkout: new deployment {after} started for ECS service {ecs.cluster}/checkout"
    )


async def test_ecs_restart_by_stopping_tasks(ecs: Ecs) -> None:
    ecs.client.run_task(
        cluster=ecs.cluster, taskDefinition="checkout", count=2, launchType="FARGATE"
    )

    result = await ecs.executor(operation="stop_task").run(RESTART)

    assert result.ok, result
    assert result.summary.startswith("restart checkout: stopped 2 task(s)")
    running = ecs.client.list_tasks(cluster=ecs.cluster, desiredStatus="RUNNING")["taskArns"]
    assert running == []


@pytest.mark.parametrize(("replicas", "expected"), [(None, 3), (5, 5)])
async def test_ecs_scale_up_updates_the_desired_count(
    ecs: Ecs, replicas: int | None, expected: int
) -> None:
    result = await ecs.executor().run(ActionParams("scale_up", "checkout", replicas=replicas))

    assert result.ok
    assert ecs.service()["desiredCount"] == expected
    assert result.summary.endswith(f"from 2 to {expected} tasks")


async def test_ecs_missing_service_is_a_reported_failure(ecs: Ecs) -> None:
    restart = await ecs.executor("nope").run(RESTART)
    scale = await ecs.executor("nope").run(ActionParams("scale_up", "checkout"))
    rollback = await ecs.executor().run(ActionParams("rollback", "checkout"))

    assert restart.summary.startswith("restart checkout: failed: ServiceNotFound")
    assert scale.summary == f"scale_up checkout: ECS service {ecs.cluster}/nope not found"
    assert "previous task definition" in rollback.summary
    assert not any(r.ok for r in (restart, scale, rollback))


async def test_ecs_unreachable_is_transient(ecs: Ecs) -> None:
    executor = EcsExecutor(
        ecs.cluster, "checkout", "eu-west-1", endpoint_url=f"http://127.0.0.1:{_free_port()}"
    )
    with pytest.raises(TransientError, match="Could not connect"):
        await executor.run(RESTART)
