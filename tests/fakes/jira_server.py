"""A fake Jira REST server (Cloud or Server flavour) on 127.0.0.1 for the real `jira` client.

It serves exactly what jira 3.10 calls for users, issues, comments, attachments and JQL search.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from aiohttp import BodyPartReader, web

Json = dict[str, Any]

_PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
_ISSUE_TYPES = (("10001", "Task"), ("10002", "Bug"))
_FIELDS = ("summary", "description", "labels", "priority", "assignee", "project", "issuetype")
_CREATED = "2024-05-01T10:00:00.000+0000"


@dataclass(slots=True)
class FakeUser:
    """A seeded person; `account_id` (Cloud) defaults to a stable id derived from `name`."""

    name: str
    display_name: str
    email: str | None = None
    account_id: str = ""

    def __post_init__(self) -> None:
        self.account_id = self.account_id or f"712020:{uuid.uuid5(uuid.NAMESPACE_URL, self.name)}"


@dataclass(slots=True)
class FakeIssue:
    """A created issue; `fields` is exactly what the client sent."""

    id: str
    key: str
    fields: Json


@dataclass(frozen=True, slots=True)
class FakeComment:
    issue_key: str
    body: str


@dataclass(frozen=True, slots=True)
class FakeAttachment:
    issue_key: str
    filename: str
    content: bytes


@dataclass(frozen=True, slots=True)
class FakeCall:
    method: str
    path: str
    query: dict[str, str]


@dataclass(slots=True)
class _Failure:
    status: int
    remaining: int
    headers: dict[str, str]
    body: Json | str | None
    path: str | None
    effective: bool

    def response(self) -> web.Response:
        if isinstance(self.body, str):
            return web.Response(status=self.status, text=self.body, headers=self.headers)
        body = self.body
        if body is None:
            body = {"errorMessages": [f"Injected failure {self.status}"], "errors": {}}
        return web.json_response(body, status=self.status, headers=self.headers)


class JqlError(ValueError):
    """The fake cannot read this JQL."""


def _parse_jql(jql: str) -> list[tuple[str, str]]:
    """`field = "value" AND field = value ...` as (field, value) pairs; nothing else is read."""
    clauses = []
    for clause in re.split(r"\s+AND\s+", jql.strip(), flags=re.IGNORECASE):
        m = re.fullmatch(r'\s*(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))\s*', clause)
        if not m:
            raise JqlError(f"Error in the JQL Query: cannot read {clause!r}")
        value = m.group(2) if m.group(2) is not None else m.group(3)
        clauses.append((m.group(1).lower(), re.sub(r"\\(.)", r"\1", value)))
    return clauses


def _errors(status: int, *messages: str, **fields: str) -> web.Response:
    return web.json_response({"errorMessages": list(messages), "errors": fields}, status=status)


class FakeJira:
    """State and handlers of one fake Jira site; `start()` serves it on a free port."""

    def __init__(self) -> None:
        self.username = "opsbot@example.com"
        self.api_token = "fake-jira-token-do-not-log"
        self.project_key = "OPS"
        self.project_id = "10000"
        self.deployment: Literal["Cloud", "Server"] = "Cloud"
        self.users: list[FakeUser] = []
        self.issues: list[FakeIssue] = []
        self.comments: list[FakeComment] = []
        self.attachments: list[FakeAttachment] = []
        self.calls: list[FakeCall] = []
        self.url = ""
        self._failures: list[_Failure] = []
        self._ids = itertools.count(10001)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- test controls --------------------------------------------------------------------

    def set_deployment(self, deployment: Literal["Cloud", "Server"]) -> None:
        self.deployment = deployment

    def fail_next(
        self,
        status: int,
        n: int = 1,
        headers: dict[str, str] | None = None,
        body: Json | str | None = None,
        *,
        path: str | None = None,
        effective: bool = False,
    ) -> None:
        """Answer the next `n` requests (to `path` only, if given) with `status`.

        `effective=True` lets the request take effect first, like a gateway timing out after
        Jira has already created the issue.
        """
        self._failures.append(_Failure(status, n, headers or {}, body, path, effective))

    def calls_to(self, method: str, path: str) -> list[FakeCall]:
        return [c for c in self.calls if c.method == method and c.path == path]

    # -- serving --------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(sock, ready),), daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("the fake Jira server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        api = "/rest/api/{version:[23]}"
        app.router.add_get(f"{api}/serverInfo", self._server_info)
        app.router.add_get(f"{api}/myself", self._myself)
        app.router.add_get(f"{api}/field", self._field)
        app.router.add_get(f"{api}/project", self._projects)
        app.router.add_get(f"{api}/project/{{id}}", self._project)
        app.router.add_post(f"{api}/issue", self._create_issue)
        app.router.add_get(f"{api}/issue/{{key}}", self._get_issue)
        app.router.add_post(f"{api}/issue/{{key}}/comment", self._add_comment)
        app.router.add_post(f"{api}/issue/{{key}}/attachments", self._add_attachment)
        app.router.add_get(f"{api}/user/search", self._user_search)
        for method in ("GET", "POST"):
            app.router.add_route(method, f"{api}/search", self._search)
            app.router.add_route(method, f"{api}/search/jql", self._search_jql)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append(FakeCall(request.method, request.path, dict(request.query)))
        failure = next(
            (f for f in self._failures if f.path in (None, request.path) and f.remaining), None
        )
        if failure is not None:
            failure.remaining -= 1
            if not failure.effective:
                return failure.response()
        if request.headers.get("Authorization") != self._expected_auth():
            response: web.StreamResponse = _errors(
                401, "You are not authenticated. Authentication required to perform this operation."
            )
            response.headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
        else:
            response = await handler(request)
        return failure.response() if failure is not None else response

    def _expected_auth(self) -> str:
        pair = f"{self.username}:{self.api_token}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    # -- rendering ------------------------------------------------------------------------

    @property
    def _cloud(self) -> bool:
        return self.deployment == "Cloud"

    def _user_json(self, user: FakeUser) -> Json:
        common = {
            "displayName": user.display_name,
            "emailAddress": user.email,
            "active": True,
            "timeZone": "UTC",
            "avatarUrls": {"48x48": f"{self.url}/avatar/{user.name}.png"},
        }
        if self._cloud:
            return {
                "self": f"{self.url}/rest/api/2/user?accountId={user.account_id}",
                "accountId": user.account_id,
                "accountType": "atlassian",
                **common,
            }
        return {
            "self": f"{self.url}/rest/api/2/user?username={user.name}",
            "key": user.name,
            "name": user.name,
            **common,
        }

    def _issue_type_json(self, type_id: str, name: str) -> Json:
        return {
            "self": f"{self.url}/rest/api/2/issuetype/{type_id}",
            "id": type_id,
            "name": name,
            "description": f"A {name.lower()}.",
            "subtask": False,
        }

    def _project_json(self) -> Json:
        return {
            "self": f"{self.url}/rest/api/2/project/{self.project_id}",
            "id": self.project_id,
            "key": self.project_key,
            "name": "Operations",
            "projectTypeKey": "software",
            "issueTypes": [self._issue_type_json(i, n) for i, n in _ISSUE_TYPES],
        }

    def _priority_json(self, name: str) -> Json:
        priority_id = str(_PRIORITIES.index(name) + 1)
        return {
            "self": f"{self.url}/rest/api/2/priority/{priority_id}",
            "id": priority_id,
            "name": name,
        }

    def _issue_json(self, issue: FakeIssue) -> Json:
        sent = issue.fields
        type_id = sent["issuetype"]["id"]
        priority = sent.get("priority")
        assignee = self._find_assignee(sent.get("assignee"))
        return {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self.url}/rest/api/2/issue/{issue.id}",
            "fields": {
                "summary": sent["summary"],
                "description": sent.get("description"),
                "labels": sent.get("labels", []),
                "priority": self._priority_json(priority["name"] if priority else "Medium"),
                "assignee": self._user_json(assignee) if assignee else None,
                "project": self._project_json(),
                "issuetype": self._issue_type_json(type_id, dict(_ISSUE_TYPES)[type_id]),
                "status": {"id": "10000", "name": "To Do"},
                "created": _CREATED,
                "updated": _CREATED,
            },
        }

    def _find_issue(self, key_or_id: str) -> FakeIssue | None:
        return next((i for i in self.issues if key_or_id in (i.key, i.id)), None)

    def _find_assignee(self, ref: Json | None) -> FakeUser | None:
        if not ref:
            return None
        if self._cloud:
            return next((u for u in self.users if u.account_id == ref.get("accountId")), None)
        return next((u for u in self.users if u.name == ref.get("name")), None)

    # -- handlers -------------------------------------------------------------------------

    async def _server_info(self, request: web.Request) -> web.Response:
        version = [1001, 0, 0] if self._cloud else [9, 12, 2]
        return web.json_response(
            {
                "baseUrl": self.url,
                "version": ".".join(map(str, version)) + ("-SNAPSHOT" if self._cloud else ""),
                "versionNumbers": version,
                "deploymentType": self.deployment,
                "buildNumber": 100265,
                "serverTime": _CREATED,
                "serverTitle": "Jira",
            }
        )

    async def _myself(self, request: web.Request) -> web.Response:
        return web.json_response(self._user_json(FakeUser("opsbot", "opsbot", self.username)))

    async def _field(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "id": name,
                    "key": name,
                    "name": name.title(),
                    "custom": False,
                    "clauseNames": [name],
                }
                for name in _FIELDS
            ]
        )

    async def _projects(self, request: web.Request) -> web.Response:
        return web.json_response([self._project_json()])

    async def _project(self, request: web.Request) -> web.Response:
        if request.match_info["id"] not in (self.project_key, self.project_id):
            return _errors(404, f"No project could be found with key '{request.match_info['id']}'.")
        return web.json_response(self._project_json())

    async def _create_issue(self, request: web.Request) -> web.Response:
        sent = (await request.json()).get("fields", {})
        problems = self._validate(sent)
        if problems:
            return _errors(400, **problems)
        issue_id = str(next(self._ids))
        issue = FakeIssue(issue_id, f"{self.project_key}-{len(self.issues) + 1}", sent)
        self.issues.append(issue)
        return web.json_response(
            {"id": issue.id, "key": issue.key, "self": f"{self.url}/rest/api/2/issue/{issue.id}"},
            status=201,
        )

    def _validate(self, sent: Json) -> dict[str, str]:
        problems = {}
        if (sent.get("project") or {}).get("id") != self.project_id:
            problems["project"] = "Specify a valid project ID or key"
        if (sent.get("issuetype") or {}).get("id") not in dict(_ISSUE_TYPES):
            problems["issuetype"] = "Specify an issue type"
        if not sent.get("summary"):
            problems["summary"] = "You must specify a summary of the issue."
        priority = (sent.get("priority") or {}).get("name")
        if "priority" in sent and priority not in _PRIORITIES:
            problems["priority"] = f"Priority name '{priority}' is not valid"
        if "assignee" in sent and self._find_assignee(sent["assignee"]) is None:
            problems["assignee"] = (
                "Specify a valid value for assignee"
                if self._cloud
                else f"User '{sent['assignee'].get('name')}' does not exist."
            )
        for label in sent.get("labels", []):
            if re.search(r"\s", label):
                problems["labels"] = f"The label '{label}' contains spaces which is invalid."
        return problems

    async def _get_issue(self, request: web.Request) -> web.Response:
        issue = self._find_issue(request.match_info["key"])
        if issue is None:
            return _errors(404, "Issue does not exist or you do not have permission to see it.")
        return web.json_response(self._issue_json(issue))

    async def _add_comment(self, request: web.Request) -> web.Response:
        issue = self._find_issue(request.match_info["key"])
        if issue is None:
            return _errors(404, "Issue does not exist or you do not have permission to see it.")
        body = (await request.json())["body"]
        self.comments.append(FakeComment(issue.key, body))
        comment_id = str(next(self._ids))
        return web.json_response(
            {
                "self": f"{self.url}/rest/api/2/issue/{issue.id}/comment/{comment_id}",
                "id": comment_id,
                "body": body,
                "created": _CREATED,
                "updated": _CREATED,
            },
            status=201,
        )

    async def _add_attachment(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Atlassian-Token") != "no-check":
            return _errors(403, "XSRF check failed")
        issue = self._find_issue(request.match_info["key"])
        if issue is None:
            return _errors(404, "Issue does not exist or you do not have permission to see it.")
        created = []
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            attachment = FakeAttachment(issue.key, part.filename or "", await part.read())
            self.attachments.append(attachment)
            attachment_id = str(next(self._ids))
            created.append(
                {
                    "self": f"{self.url}/rest/api/2/attachment/{attachment_id}",
                    "id": attachment_id,
                    "filename": attachment.filename,
                    "size": len(attachment.content),
                    "mimeType": part.headers.get("Content-Type", "application/octet-stream"),
                    "created": _CREATED,
                    "content": f"{self.url}/secure/attachment/{attachment_id}",
                }
            )
        if not created:
            return _errors(400, "The request contained no file part named 'file'.")
        return web.json_response(created)

    async def _user_search(self, request: web.Request) -> web.Response:
        if self._cloud:
            term = request.query.get("query")
            if not term:
                return _errors(400, "The query parameter 'query' is required.")
        else:
            if request.match_info["version"] == "3":
                raise web.HTTPNotFound()
            term = request.query.get("username")
            if not term:
                return _errors(400, "The username query parameter was not provided")
        term = term.lower()
        found = [
            u
            for u in self.users
            if any(term in (v or "").lower() for v in (u.name, u.display_name, u.email))
        ]
        limit = int(request.query.get("maxResults", 50))
        return web.json_response([self._user_json(u) for u in found[:limit]])

    async def _search(self, request: web.Request) -> web.Response:
        if self._cloud:
            return _errors(
                410,
                "The requested API has been removed. "
                "Please migrate to the /rest/api/3/search/jql API.",
            )
        found, limit = await self._run_search(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(
            {
                "startAt": 0,
                "maxResults": limit,
                "total": len(found),
                "issues": [self._issue_json(i) for i in found[:limit]],
            }
        )

    async def _search_jql(self, request: web.Request) -> web.Response:
        if not self._cloud:
            raise web.HTTPNotFound()
        found, limit = await self._run_search(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(
            {"issues": [self._issue_json(i) for i in found[:limit]], "isLast": True}
        )

    async def _run_search(self, request: web.Request) -> tuple[list[FakeIssue] | web.Response, int]:
        params: Json = dict(request.query) if request.method == "GET" else await request.json()
        limit = int(params.get("maxResults") or 50)
        try:
            clauses = _parse_jql(params.get("jql", ""))
        except JqlError as exc:
            return _errors(400, str(exc)), limit
        fields = {"project", "labels", "key", "issuekey"}
        unknown = [name for name, _ in clauses if name not in fields]
        if unknown:
            return _errors(400, f"Field '{unknown[0]}' does not exist in this fake."), limit
        found = []
        for issue in self.issues:
            values = {
                "project": {self.project_key, self.project_id},
                "labels": set(issue.fields.get("labels", [])),
                "key": {issue.key},
                "issuekey": {issue.key},
            }
            if all(value in values[name] for name, value in clauses):
                found.append(issue)
        return found, limit


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    """A running fake Jira (Cloud until `set_deployment("Server")`), empty until seeded."""
    server = FakeJira()
    server.start()
    yield server
    server.stop()
