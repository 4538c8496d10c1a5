"""Fake Kubernetes and Docker Engine API servers and a recording HTTP endpoint on 127.0.0.1,
speaking the REST paths the real clients (kubernetes_asyncio, aiodocker, httpx) use."""

from __future__ import annotations

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
        await runner.cleanup()


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Merge a JSON merge/strategic-merge patch of plain maps (enough for what the bot sends)."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


@dataclass
class FakeKubernetes(_Server):
    """Deployments and their scale subresource under /apis/apps/v1, with bearer-token auth."""

    token: str = "test-token"
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def add_deployment(
        self, name: str, namespace: str = "default", replicas: int = 1, paused: bool = False
    ) -> dict[str, Any]:
        labels = {"app": name}
        self.deployments[(namespace, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
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
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._status(401, "Unauthorized", "Unauthorized")
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

    def app(self) -> web.Application:
        app = web.Application()
        base = "/apis/apps/v1/namespaces/{ns}/deployments/{name}"
        for method in ("GET", "PATCH"):
            app.router.add_route(method, base, self._deployment)
            app.router.add_route(method, base + "/scale", self._scale)
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
    """Answers any method on any path with a per-path canned response (default 200 JSON)."""

    responses: dict[str, tuple[int, str, dict[str, str]]] = field(default_factory=dict)

    def respond(
        self, path: str, status: int, body: str, headers: dict[str, str] | None = None
    ) -> None:
        self.responses[path] = (status, body, headers or {})

    async def _any(self, request: web.Request) -> web.Response:
        status, body, headers = self.responses.get(request.path, (200, '{"ok": true}', {}))
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
