"""Local fakes for the observability clients: one HTTP server that mounts small API fakes
(log tail, Loki, Prometheus, GitHub, Sentry, health), and moto's AWS server.
"""

from __future__ import annotations

import inspect
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

Handler = Callable[[Request], Response | Awaitable[Response]]
STARTUP_DEADLINE_S = 10.0
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class FakeHttpServer:
    """A uvicorn server on 127.0.0.1 in a thread; tests mount a handler per (method, path).

    Unmounted paths answer 404 like a real API would. Every request is recorded in `seen`.
    """

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Handler] = {}
        self.seen: list[SeenRequest] = []
        app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=_METHODS)])
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake HTTP server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join()
        self._sock.close()

    def reset(self) -> None:
        self._routes.clear()
        self.seen.clear()

    def route(self, path: str, handler: Handler, method: str = "GET") -> None:
        self._routes[(method, path)] = handler

    def reply(
        self,
        path: str,
        *,
        status: int = 200,
        json_body: Any = None,
        text: str | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
    ) -> None:
        """Answer `path` with a canned response (JSON when `json_body` is given, else text)."""

        def canned(_: Request) -> Response:
            if text is None:
                return JSONResponse(json_body, status_code=status, headers=headers)
            return PlainTextResponse(text, status_code=status, headers=headers)

        self.route(path, canned, method)

    def requests_to(self, path: str) -> list[SeenRequest]:
        return [r for r in self.seen if r.path == path]

    async def _dispatch(self, request: Request) -> Response:
        path = request.url.path
        self.seen.append(
            SeenRequest(request.method, path, dict(request.query_params), dict(request.headers))
        )
        handler = self._routes.get((request.method, path))
        if handler is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        response = handler(request)
        return await response if inspect.isawaitable(response) else response


@pytest.fixture(scope="session")
def _obs_http_server() -> Iterator[FakeHttpServer]:
    server = FakeHttpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def obs_http(_obs_http_server: FakeHttpServer) -> FakeHttpServer:
    """The shared fake HTTP server, with no routes mounted and nothing recorded."""
    _obs_http_server.reset()
    return _obs_http_server


# --- API fakes: each mounts the paths of one API and honours the parameters the real one does.


def serve_log_tail(
    server: FakeHttpServer, lines: Sequence[str], path: str = "/logs/tail", style: str = "text"
) -> str:
    """A tail endpoint answering `?lines=N` as text/plain, a JSON list or `{"lines": [...]}`."""

    def tail(request: Request) -> Response:
        wanted = lines[-int(request.query_params.get("lines", len(lines))) :]
        if style == "text":
            return PlainTextResponse("\n".join(wanted) + "\n")
        return JSONResponse(list(wanted) if style == "json_list" else {"lines": list(wanted)})

    server.route(path, tail)
    return server.url + path


def serve_loki(server: FakeHttpServer, streams: Mapping[str, Sequence[tuple[int, str]]]) -> str:
    """Loki's `query_range` over `streams` ({'{"app": "x"}': [(ns, line), ...]}), any selector.

    Honours start (inclusive), end (exclusive), direction and limit across streams.
    """

    def query_range(request: Request) -> Response:
        q = request.query_params
        if "query" not in q or not q["query"].startswith("{"):
            return PlainTextResponse(
                "parse error : queries require at least one regexp or equality matcher",
                status_code=400,
            )
        start, end = int(q["start"]), int(q["end"])
        entries = sorted(
            (ts, line, labels)
            for labels, values in streams.items()
            for ts, line in values
            if start <= ts < end
        )
        if q.get("direction", "backward") == "backward":
            entries.reverse()
        kept = entries[: int(q.get("limit", 100))]
        result = [
            {
                "stream": json.loads(labels),
                "values": [[str(ts), line] for ts, line, lab in kept if lab == labels],
            }
            for labels in streams
            if any(lab == labels for _, _, lab in kept)
        ]
        return JSONResponse(
            {"status": "success", "data": {"resultType": "streams", "result": result}}
        )

    server.route("/loki/api/v1/query_range", query_range)
    return server.url


def iso(ts: float) -> str:
    """GitHub's and Sentry's timestamp format."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gh_commit(sha: str, message: str, login: str | None, at: float) -> dict[str, Any]:
    person = {"name": login or "Unlinked Author", "email": "dev@example.com", "date": iso(at)}
    return {
        "sha": sha,
        "commit": {"message": message, "author": person, "committer": person},
        "author": {"login": login} if login else None,
    }


def gh_pull(
    number: int, title: str, login: str, merge_sha: str, merged_at: float | None, updated_at: float
) -> dict[str, Any]:
    return {
        "number": number,
        "title": title,
        "state": "closed",
        "user": {"login": login},
        "merged_at": iso(merged_at) if merged_at is not None else None,
        "updated_at": iso(updated_at),
        "merge_commit_sha": merge_sha,
        "head": {"sha": "f" * 40},
    }


def gh_deployment(
    sha: str, environment: str, login: str, at: float, description: str | None = None
) -> dict[str, Any]:
    return {
        "sha": sha,
        "ref": "main",
        "environment": environment,
        "description": description,
        "creator": {"login": login},
        "created_at": iso(at),
    }


def serve_github(
    server: FakeHttpServer,
    repo: str,
    *,
    commits: Sequence[dict[str, Any]] = (),
    pulls: Sequence[dict[str, Any]] = (),
    deployments: Sequence[dict[str, Any]] = (),
    token: str = "",
) -> str:
    """GitHub REST's list endpoints for one repo; with `token`, other callers get 401."""

    def authorized(request: Request) -> Response | None:
        if token and request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return None

    def listing(
        items: Sequence[dict[str, Any]], keep: Callable[[Request, dict[str, Any]], bool]
    ) -> Handler:
        def handler(request: Request) -> Response:
            if (refused := authorized(request)) is not None:
                return refused
            per_page = int(request.query_params.get("per_page", 30))
            return JSONResponse([i for i in items if keep(request, i)][:per_page])

        return handler

    def since(request: Request, commit: dict[str, Any]) -> bool:
        after = request.query_params.get("since")
        return after is None or commit["commit"]["committer"]["date"] >= after

    def closed(request: Request, pull: dict[str, Any]) -> bool:
        return request.query_params.get("state") in ("closed", "all")

    server.route(f"/repos/{repo}/commits", listing(commits, since))
    server.route(
        f"/repos/{repo}/pulls",
        listing(sorted(pulls, key=lambda p: p["updated_at"], reverse=True), closed),
    )
    server.route(f"/repos/{repo}/deployments", listing(deployments, lambda _r, _d: True))
    return server.url


def sentry_issue(title: str, count: int, first_seen: float, short_id: str) -> dict[str, Any]:
    return {
        "id": short_id.rsplit("-", 1)[-1],
        "shortId": short_id,
        "title": title,
        "culprit": "app.views",
        "count": str(count),
        "userCount": 1,
        "firstSeen": iso(first_seen),
        "lastSeen": iso(time.time()),
        "status": "unresolved",
        "permalink": f"https://sentry.example.com/organizations/acme/issues/{short_id}/",
    }


def serve_sentry(
    server: FakeHttpServer, org: str, project: str, issues: Sequence[dict[str, Any]], token: str
) -> str:
    """Sentry's project issues endpoint: Bearer auth, `sort=freq`, `limit`, unresolved only."""
    path = f"/api/0/projects/{org}/{project}/issues/"

    def list_issues(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"detail": "Invalid token"}, status_code=401)
        found = [i for i in issues if i["status"] == "unresolved"]
        if request.query_params.get("sort") == "freq":
            found.sort(key=lambda i: int(i["count"]), reverse=True)
        return JSONResponse(found[: int(request.query_params.get("limit", 100))])

    server.route(path, list_issues)
    return server.url + "/api/0"


def serve_prometheus(server: FakeHttpServer, by_query: Mapping[str, list[dict[str, Any]]]) -> str:
    """Prometheus's `query_range` and `query` answering canned results per PromQL string."""

    def answer(result_type: str) -> Handler:
        def handler(request: Request) -> Response:
            query = request.query_params.get("query", "")
            if query not in by_query:
                return JSONResponse(
                    {
                        "status": "error",
                        "errorType": "bad_data",
                        "error": f'1:1: parse error: unknown query "{query}"',
                    },
                    status_code=400,
                )
            return JSONResponse(
                {
                    "status": "success",
                    "data": {"resultType": result_type, "result": by_query[query]},
                }
            )

        return handler

    server.route("/api/v1/query_range", answer("matrix"))
    server.route("/api/v1/query", answer("vector"))
    return server.url


# --- sockets that misbehave below HTTP


@pytest.fixture
def refused_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens: connection refused."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """An http URL whose socket accepts connections but never answers: read timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- AWS


@pytest.fixture(scope="session")
def _obs_moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # heavy: only AWS tests pay for the import

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def obs_aws(_obs_moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's endpoint URL, emptied, with dummy AWS credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    httpx.post(f"{_obs_moto_server}/moto-api/reset").raise_for_status()
    return _obs_moto_server
