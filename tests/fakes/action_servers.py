"""Fake Kubernetes and Docker Engine API servers and a recording HTTP endpoint on 127.0.0.1,
speaking the REST paths the real clients (kubernetes_asyncio, aiodocker, httpx) use."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Server:
    """What every fake shares: its base URL, the requests it got, and a forced failure status."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    fail_with: int | None = None
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # ends slow answers at teardown

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.read(),
            )
        )
        if self.fail_with is not None:
            return web.json_response({"message": "injected failure"}, status=self.fail_with)
        return await handler(request)


@contextlib.asynccontextmanager
async def _serving(server: _Server, app: web.Application) -> AsyncIterator[None]:
    app.middlewares.append(server._record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}"
    try:
        yield
    finally:
        server.closing.set()
        await runner.cleanup()


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Merge a JSON merge/strategic-merge patch of plain maps (enough for what the bot sends)."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _selected(obj: dict[str, Any], selector: str) -> bool:
    """Whether an object's labels satisfy an equality label selector (`a=b,c=d`)."""
    labels = obj["metadata"].get("labels") or {}
    pairs = [term.split("=", 1) for term in selector.split(",") if "=" in term]
    return all(labels.get(k) == v for k, v in pairs)


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}


@dataclass
class FakeKubernetes(_Server):
    """Deployments (and their scale subresource), ReplicaSets, Jobs, Pods with their logs, and
    Events, under the API server's own paths, with bearer-token auth."""

    token: str = "test-token"
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    replicasets: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    previous_logs: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def add_replicaset(
        self, deployment: str, name: str, revision: int, namespace: str = "default"
    ) -> None:
        self.replicasets.append(
            {
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"app": deployment},
                    "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": deployment,
                            "uid": f"uid-{deployment}",
                        }
                    ],
                },
                "spec": {"selector": {"matchLabels": {"app": deployment}}},
            }
        )
        annotations = self.deployments[(namespace, deployment)]["metadata"]["annotations"]
        current = int(annotations.get("deployment.kubernetes.io/revision", "0"))
        annotations["deployment.kubernetes.io/revision"] = str(max(current, revision))

    def add_job(
        self, name: str, namespace: str = "default", backoff_limit: int = 6, failed: int = 0
    ) -> None:
        conditions = (
            [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
            if failed > backoff_limit
            else []
        )
        self.jobs[(namespace, name)] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"backoffLimit": backoff_limit, "template": {"spec": {"containers": []}}},
            "status": {"failed": failed, "conditions": conditions},
        }

    def add_pod(
        self,
        name: str,
        *,
        labels: dict[str, str],
        owner: tuple[str, str] | None,
        container: dict[str, Any],
        status: dict[str, Any],
        namespace: str = "default",
        phase: str = "Running",
    ) -> None:
        """`container` is the spec (name, image, command, resources); `status` its status."""
        owners = (
            [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "u1"}]
            if owner
            else []
        )
        self.pods.append(
            {
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": owners,
                },
                "spec": {"containers": [container]},
                "status": {"phase": phase, "containerStatuses": [status]},
            }
        )

    def add_event(
        self,
        involved: str,
        reason: str,
        message: str,
        *,
        type: str = "Warning",
        count: int = 1,
        namespace: str = "default",
        source: str = "kubelet",
    ) -> None:
        self.events.append(
            {
                "metadata": {"name": f"{involved}.{len(self.events)}", "namespace": namespace},
                "involvedObject": {"name": involved, "namespace": namespace},
                "type": type,
                "reason": reason,
                "message": message,
                "count": count,
                "firstTimestamp": "2026-12-05T10:00:00Z",
                "lastTimestamp": "2026-12-05T10:20:00Z",
                "source": {"component": source},
            }
        )

    def add_deployment(
        self, name: str, namespace: str = "default", replicas: int = 1, paused: bool = False
    ) -> dict[str, Any]:
        labels = {"app": name}
        self.deployments[(namespace, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "generation": 1,
                "annotations": {},
            },
            "spec": {
                "replicas": replicas,
                "paused": paused,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
                },
            },
            "status": {"replicas": replicas, "readyReplicas": replicas},
        }
        return self.deployments[(namespace, name)]

    def _status(self, code: int, reason: str, message: str) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
        body |= {"message": message, "reason": reason, "code": code}
        return web.json_response(body, status=code)

    def _found(self, request: web.Request) -> dict[str, Any] | web.Response:
        if denied := self._authorized(request):
            return denied
        ns, name = request.match_info["ns"], request.match_info["name"]
        if (ns, name) not in self.deployments:
            return self._status(404, "NotFound", f'deployments.apps "{name}" not found')
        return self.deployments[(ns, name)]

    def _scale_of(self, deployment: dict[str, Any]) -> dict[str, Any]:
        meta = deployment["metadata"]
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {"replicas": deployment["spec"]["replicas"]},
            "status": {"replicas": deployment["status"]["replicas"], "selector": "app"},
        }

    async def _deployment(self, request: web.Request) -> web.Response:
        found = self._found(request)
        if isinstance(found, web.Response):
            return found
        if request.method == "PATCH":
            _merge(found, await request.json())
            found["metadata"]["generation"] += 1
        return web.json_response(found)

    async def _scale(self, request: web.Request) -> web.Response:
        found = self._found(request)
        if isinstance(found, web.Response):
            return found
        if request.method == "PATCH":
            found["spec"]["replicas"] = (await request.json())["spec"]["replicas"]
        return web.json_response(self._scale_of(found))

    def _authorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._status(401, "Unauthorized", "Unauthorized")
        return None

    def _in(self, request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ns, selector = request.match_info["ns"], request.query.get("labelSelector", "")
        return [o for o in items if o["metadata"]["namespace"] == ns and _selected(o, selector)]

    async def _list_pods(self, request: web.Request) -> web.Response:
        denied = self._authorized(request)
        return denied or web.json_response(_list("PodList", self._in(request, self.pods)))

    async def _list_replicasets(self, request: web.Request) -> web.Response:
        denied = self._authorized(request)
        items = self._in(request, self.replicasets)
        return denied or web.json_response(_list("ReplicaSetList", items))

    async def _list_events(self, request: web.Request) -> web.Response:
        denied = self._authorized(request)
        name = request.query.get("fieldSelector", "").removeprefix("involvedObject.name=")
        items = [e for e in self._in(request, self.events) if e["involvedObject"]["name"] == name]
        return denied or web.json_response(_list("EventList", items))

    async def _job(self, request: web.Request) -> web.Response:
        if denied := self._authorized(request):
            return denied
        ns, name = request.match_info["ns"], request.match_info["name"]
        if (ns, name) not in self.jobs:
            return self._status(404, "NotFound", f'jobs.batch "{name}" not found')
        return web.json_response(self.jobs[(ns, name)])

    async def _log(self, request: web.Request) -> web.Response:
        if denied := self._authorized(request):
            return denied
        ns, pod = request.match_info["ns"], request.match_info["name"]
        container = request.query.get("container", "")
        # Go's strconv.ParseBool, as the API server reads it (the client sends "True").
        if request.query.get("previous") not in ("1", "t", "T", "true", "TRUE", "True"):
            return web.Response(text="")
        text = self.previous_logs.get((ns, pod, container))
        if text is None:
            message = f'previous terminated container "{container}" in pod "{pod}" not found'
            return self._status(400, "BadRequest", message)
        tail = int(request.query.get("tailLines", "0") or 0)
        lines = text.splitlines()
        return web.Response(text="\n".join(lines[-tail:] if tail else lines))

    def app(self) -> web.Application:
        app = web.Application()
        base = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"
        for method in ("GET", "PATCH"):
            app.router.add_route(method, base, self._deployment)
            app.router.add_route(method, base + "/scale", self._scale)
        app.router.add_get("/apis/apps/v1/namespaces/{ns}/replicasets", self._list_replicasets)
        app.router.add_get("/apis/batch/v1/namespaces/{ns}/jobs/{name}", self._job)
        app.router.add_get("/api/v1/namespaces/{ns}/pods", self._list_pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self._log)
        app.router.add_get("/api/v1/namespaces/{ns}/events", self._list_events)
        return app


@dataclass
class FakeDocker(_Server):
    """Docker Engine API: /version (unversioned), container restart and inspect (versioned)."""

    api_version: str = "1.45"
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    crash_on_restart: set[str] = field(default_factory=set)

    def add_container(self, name: str, pid: int = 100) -> None:
        self.containers[name] = {
            "Id": f"{name}-0123456789ab",
            "Name": f"/{name}",
            "RestartCount": 0,
            "State": {
                "Status": "running",
                "Running": True,
                "Pid": pid,
                "ExitCode": 0,
                "StartedAt": "2024-01-01T00:00:00.000000000Z",
            },
        }

    def _json(self, data: dict[str, Any], status: int = 200) -> web.Response:
        # Docker sends no charset, and aiodocker only parses an exact "application/json".
        return web.Response(
            body=json.dumps(data).encode(), status=status, content_type="application/json"
        )

    def _missing(self, name: str) -> web.Response:
        return self._json({"message": f"No such container: {name}"}, status=404)

    async def _version(self, request: web.Request) -> web.Response:
        return self._json(
            {"Version": "26.1.0", "ApiVersion": self.api_version, "MinAPIVersion": "1.24"}
        )

    async def _restart(self, request: web.Request) -> web.Response:
        name = request.match_info["id"]
        if name not in self.containers:
            return self._missing(name)
        state = self.containers[name]["State"]
        state["Pid"] += 1
        state["StartedAt"] = f"2024-01-01T00:00:{state['Pid'] % 60:02d}.000000000Z"
        if name in self.crash_on_restart:
            state |= {"Status": "exited", "Running": False, "Pid": 0, "ExitCode": 137}
        return web.Response(status=204)

    async def _inspect(self, request: web.Request) -> web.Response:
        name = request.match_info["id"]
        if name not in self.containers:
            return self._missing(name)
        return self._json(self.containers[name])

    def app(self) -> web.Application:
        app = web.Application()
        prefix = f"/v{self.api_version}/containers/{{id}}"
        app.router.add_get("/version", self._version)
        app.router.add_post(prefix + "/restart", self._restart)
        app.router.add_get(prefix + "/json", self._inspect)
        return app


@dataclass
class RecordingHttp(_Server):
    """Answers any method on any path with a per-path canned response (default 200 JSON),
    after a per-path delay (a slow deploy API: the action is still running meanwhile)."""

    responses: dict[str, tuple[int, str, dict[str, str]]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)

    def respond(
        self,
        path: str,
        status: int,
        body: str,
        headers: dict[str, str] | None = None,
        *,
        delay_s: float = 0.0,
    ) -> None:
        self.responses[path] = (status, body, headers or {})
        self.delays[path] = delay_s

    async def _any(self, request: web.Request) -> web.Response:
        status, body, headers = self.responses.get(request.path, (200, '{"ok": true}', {}))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), self.delays.get(request.path, 0.0))
        return web.Response(status=status, text=body, headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        return app


@pytest.fixture
async def fake_kubernetes() -> AsyncIterator[FakeKubernetes]:
    server = FakeKubernetes()
    async with _serving(server, server.app()):
        yield server


@pytest.fixture
async def fake_docker() -> AsyncIterator[FakeDocker]:
    server = FakeDocker()
    async with _serving(server, server.app()):
        yield server


@pytest.fixture
async def recording_http() -> AsyncIterator[RecordingHttp]:
    server = RecordingHttp()
    async with _serving(server, server.app()):
        yield server
