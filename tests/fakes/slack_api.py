"""A fake Slack on 127.0.0.1: the Web API methods opsbot calls and a Socket Mode server.

The real slack_sdk/slack_bolt clients reach it through `api_url`. It answers like Slack (`ok`,
`ts`, `channel`, error codes, 429 with `Retry-After`), records every call, and can be told to
fail. `SlackSender` sends inbound requests signed and shaped exactly as Slack sends them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from aiohttp import WSMsgType, web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from bot.chat.adapters.base import InboundMessage
from bot.chat.router import message_from_json
from bot.store import schema as t
from tests.fakes.bot_server import RunningBot

Json = dict[str, Any]

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"
TEAM_ID, APP_ID = "T0FAKE", "A0FAKE"
BOT_USER_ID, BOT_ID = "U0OPSBOT", "B0OPSBOT"
MAX_BLOCKS = 50


@dataclass(frozen=True, slots=True)
class SlackCall:
    """One Web API call: the method name and every argument (query, form or JSON)."""

    method: str
    params: Json


@dataclass(slots=True)
class _Failure:
    remaining: int
    status: int
    error: str
    retry_after: float | None
    method: str | None
    channel: str | None

    def matches(self, method: str, params: Json) -> bool:
        return (
            self.remaining > 0
            and self.method in (None, method)
            and self.channel in (None, params.get("channel"))
        )

    def response(self) -> web.Response:
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else {}
        if self.status >= 500:  # Slack's edge answers outages with HTML, not JSON
            return web.Response(
                status=self.status,
                text="<html><body>Service Unavailable</body></html>",
                content_type="text/html",
                headers=headers,
            )
        return web.json_response(
            {"ok": False, "error": self.error}, status=self.status, headers=headers
        )


@dataclass(slots=True)
class Hold:
    """The next call to a method waits: `arrived` is set when it comes, `release()` answers it."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass(slots=True)
class SlackMessage:
    channel: str
    ts: str
    text: str
    blocks: list[Json] | None
    thread_ts: str | None
    edits: int = 0
    metadata: Json | None = None


@dataclass(slots=True)
class _Socket:
    ws: web.WebSocketResponse
    acks: dict[str, Json] = field(default_factory=dict)
    acked: asyncio.Condition = field(default_factory=asyncio.Condition)


class FakeSlack:
    """State and handlers of one fake workspace; `api_url` ends in `/api/` like Slack's."""

    def __init__(self) -> None:
        self.api_url = ""
        self.messages: dict[tuple[str, str], SlackMessage] = {}
        # channel → the error every call about it gets (channel_not_found, not_in_channel, ...)
        self.channel_errors: dict[str, str] = {}
        self.users: dict[str, Json] = {}
        self.connections = 0
        self._calls: list[SlackCall] = []
        self._failures: list[_Failure] = []
        self._holds: dict[str, Hold] = {}
        self._ts = itertools.count(100)
        self._tickets: set[str] = set()
        self._socket: _Socket | None = None
        self._connected = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- test controls --------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[SlackCall]:
        return [c for c in self._calls if method is None or c.method == method]

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        retry_after: float | None = None,
        error: str = "",
        method: str | None = None,
        channel: str | None = None,
    ) -> None:
        """Answer the next `n` calls (to `method`, about `channel`, if given) with a failure:
        429 `ratelimited` (with `Retry-After`, default 1 s), a 5xx outage, or, with status
        200, Slack's `{"ok": false, "error": error}`."""
        if status == 429 and retry_after is None:
            retry_after = 1.0
        error = error or ("ratelimited" if status == 429 else "internal_error")
        self._failures.append(_Failure(n, status, error, retry_after, method, channel))

    def hold(self, method: str) -> Hold:
        """Keep the next call to `method` waiting (its request read, no answer yet)."""
        self._holds[method] = Hold()
        return self._holds[method]

    def add_user(self, user_id: str, name: str, real_name: str = "") -> None:
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": real_name or name,
            "is_bot": False,
            "profile": {"display_name": name, "real_name": real_name or name},
        }

    def thread(self, channel: str, ts: str) -> list[SlackMessage]:
        """The replies in a thread, oldest first."""
        return sorted(
            (m for m in self.messages.values() if m.channel == channel and m.thread_ts == ts),
            key=lambda m: m.ts,
        )

    # -- Socket Mode controls -------------------------------------------------------------

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def send_envelope(
        self, kind: str, payload: Json, *, retry_attempt: int = 0, retry_reason: str = ""
    ) -> str:
        """Push an `events_api`, `interactive` or `slash_commands` envelope; returns its id."""
        assert self._socket is not None, "no Socket Mode client is connected"
        envelope_id = str(uuid.uuid4())
        envelope: Json = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        await self._socket.ws.send_str(json.dumps(envelope))
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout_s: float = 10.0) -> Json:
        """The client's acknowledgement of an envelope (with its response payload, if any)."""
        sock = self._socket
        assert sock is not None
        async with sock.acked:
            await asyncio.wait_for(sock.acked.wait_for(lambda: envelope_id in sock.acks), timeout_s)
        return sock.acks[envelope_id]

    def acked(self, envelope_id: str) -> bool:
        return self._socket is not None and envelope_id in self._socket.acks

    # -- serving --------------------------------------------------------------------------

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.api_url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/"
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._websocket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _params(self, request: web.Request) -> Json:
        params: Json = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update(await request.post())
        return params

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._params(request)
        hold = self._holds.pop(method, None)
        if hold is not None:
            hold.arrived.set()
            await hold.released.wait()
        self._calls.append(SlackCall(method, params))
        failure = next((f for f in self._failures if f.matches(method, params)), None)
        if failure is not None:
            failure.remaining -= 1
            return failure.response()
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if not token:
            return _error("not_authed")
        if token != expected:
            same_kind = token.split("-")[0] == expected.split("-")[0]
            return _error("invalid_auth" if same_kind else "not_allowed_token_type")
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("unknown_method")
        channel = params.get("channel")
        if channel in self.channel_errors:
            return _error(self.channel_errors[channel])
        try:
            return web.json_response({"ok": True, **handler(params)})
        except _SlackError as exc:
            return _error(str(exc))

    def _auth_test(self, params: Json) -> Json:
        return {
            "url": "https://fake-workspace.slack.com/",
            "team": "Fake Workspace",
            "user": "opsbot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, params: Json) -> Json:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        base = self.api_url.replace("http://", "ws://").removesuffix("api/")
        return {"url": f"{base}link/?ticket={ticket}&app_id={APP_ID}"}

    def _message(self, params: Json) -> SlackMessage:
        text, blocks = params.get("text") or "", params.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if not text and not blocks:
            raise _SlackError("no_text")
        if blocks is not None:
            _validate_blocks(blocks)
        metadata = params.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        return SlackMessage(
            params["channel"], "", text, blocks, params.get("thread_ts"), metadata=metadata
        )

    def _chat_postMessage(self, params: Json) -> Json:
        msg = self._message(params)
        msg.ts = f"1700000000.{next(self._ts):06d}"
        self.messages[(msg.channel, msg.ts)] = msg
        return {"channel": msg.channel, "ts": msg.ts, "message": self._render(msg)}

    def _chat_update(self, params: Json) -> Json:
        old = self.messages.get((params["channel"], params["ts"]))
        if old is None:
            raise _SlackError("message_not_found")
        msg = self._message(params)
        old.text, old.blocks, old.edits = msg.text, msg.blocks, old.edits + 1
        return {
            "channel": old.channel,
            "ts": old.ts,
            "text": old.text,
            "message": self._render(old),
        }

    def _conversations_history(self, params: Json) -> Json:
        """A channel's top-level messages, newest first (metadata only when asked for)."""
        channel, limit = params["channel"], int(params.get("limit") or 100)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        top = sorted(
            (m for m in self.messages.values() if m.channel == channel and not m.thread_ts),
            key=lambda m: m.ts,
            reverse=True,
        )[:limit]
        out = []
        for m in top:
            rendered = self._render(m)
            if not with_metadata:
                rendered.pop("metadata", None)
            out.append(rendered)
        return {"messages": out, "has_more": False}

    def _chat_getPermalink(self, params: Json) -> Json:
        channel, ts = params["channel"], params["message_ts"]
        if (channel, ts) not in self.messages:
            raise _SlackError("message_not_found")
        link = f"https://fake-workspace.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"channel": channel, "permalink": link}

    def _users_info(self, params: Json) -> Json:
        user = self.users.get(params.get("user", ""))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": user}

    def _render(self, msg: SlackMessage) -> Json:
        out: Json = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": msg.text}
        out.update(ts=msg.ts, blocks=msg.blocks or [])
        if msg.thread_ts:
            out["thread_ts"] = msg.thread_ts
        if msg.metadata:
            out["metadata"] = msg.metadata
        return out

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        self._tickets.discard(ticket)  # a ticket opens one connection, as Slack's do
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sock = _Socket(ws)
        self._socket = sock
        self.connections += 1
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        self._connected.set()
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            ack = json.loads(frame.data)
            async with sock.acked:
                sock.acks[ack["envelope_id"]] = ack
                sock.acked.notify_all()
        return ws


class _SlackError(Exception):
    """Ends a call with Slack's `{"ok": false, "error": code}` (HTTP 200, as Slack answers)."""


def _validate_blocks(blocks: list[Json]) -> None:
    """Slack refuses a message whose blocks break Block Kit's shapes or limits."""
    if len(blocks) > MAX_BLOCKS:
        raise _SlackError("invalid_blocks")
    for raw in blocks:
        block = Block.parse(raw)
        if block is None:
            raise _SlackError("invalid_blocks")
        try:
            block.validate_json()
        except SlackObjectFormationError as exc:
            raise _SlackError("invalid_blocks") from exc


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})


# -- inbound requests, built as Slack builds them -------------------------------------------


def signature(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    """Slack's v0 signature: HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def event_callback(event: Json, *, event_id: str | None = None) -> Json:
    return {
        "token": "deprecated-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def message_event(
    text: str,
    *,
    channel: str,
    ts: str,
    user: str = "U024BE7LH",
    thread_ts: str | None = None,
    parent_user_id: str | None = BOT_USER_ID,
    kind: str = "message",
    **extra: Any,
) -> Json:
    """A `message` (or `app_mention`) event; in a thread when `thread_ts` is given."""
    event: Json = {
        "type": kind,
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "channel_type": "channel",
        "team": TEAM_ID,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
        if kind == "message" and parent_user_id:
            event["parent_user_id"] = parent_user_id
    return {**event, **extra}


def block_actions(
    action_id: str,
    value: str,
    *,
    channel: str,
    message_ts: str,
    thread_ts: str | None = None,
    user: str = "U024BE7LH",
    username: str = "ravi",
    label: str = "Acknowledge",
    action_ts: str | None = None,
) -> Json:
    """The interactivity payload Slack sends when a button on a bot message is clicked."""
    message: Json = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": message_ts}
    container: Json = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel,
        "is_ephemeral": False,
    }
    if thread_ts:
        message["thread_ts"] = container["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "user": {"id": user, "username": username, "name": username, "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "deprecated-verification-token",
        "container": container,
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.fake",
        "team": {"id": TEAM_ID, "domain": "fake-workspace"},
        "channel": {"id": channel, "name": "incidents"},
        "message": message,
        "response_url": "https://hooks.slack.com/actions/T0FAKE/1/fake",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "incident",
                "text": {"type": "plain_text", "text": label, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": action_ts or f"{time.time():.6f}",
            }
        ],
    }


def slash_command(
    text: str, *, channel: str, user: str = "U024BE7LH", command: str = "/incident"
) -> dict[str, str]:
    """The form fields of a slash command invocation."""
    return {
        "token": "deprecated-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "fake-workspace",
        "channel_id": channel,
        "channel_name": "incidents",
        "user_id": user,
        "user_name": "ravi",
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "response_url": "https://hooks.slack.com/commands/T0FAKE/1/fake",
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.fake",
    }


class SlackSender:
    """Posts to the bot's `/slack/events` exactly as Slack does (signed, JSON or form)."""

    def __init__(self, client: httpx.AsyncClient, secret: str = SIGNING_SECRET) -> None:
        self.client, self.secret = client, secret

    async def raw(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        ts = int(time.time()) if timestamp is None else timestamp
        sent = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature(body, ts, secret or self.secret),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **(headers or {}),
        }
        return await self.client.post("/slack/events", content=body.encode(), headers=sent)

    async def event(
        self, payload: Json, *, retry_num: int | None = None, **kw: Any
    ) -> httpx.Response:
        headers = kw.pop("headers", {})
        if retry_num is not None:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.raw(json.dumps(payload), "application/json", headers=headers, **kw)

    async def interactive(self, payload: Json, **kw: Any) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.raw(body, "application/x-www-form-urlencoded", **kw)

    async def command(self, form: dict[str, str], **kw: Any) -> httpx.Response:
        return await self.raw(urlencode(form), "application/x-www-form-urlencoded", **kw)


async def inbound(bot: RunningBot) -> list[InboundMessage]:
    """What the bot committed for its router to handle (acknowledged means here), in order."""
    async with bot.runtime.store.read() as conn:
        rows = (
            await conn.execute(
                select(t.outbox.c.payload)
                .where(t.outbox.c.kind == "inbound")
                .order_by(t.outbox.c.id)
            )
        ).all()
    return [message_from_json(r.payload) for r in rows]


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A running fake Slack workspace with its Web API at `.api_url`."""
    server = FakeSlack()
    await server.start()
    yield server
    await server.stop()


def slack_settings(fake: FakeSlack, **overrides: str) -> dict[str, str]:
    """The `slack:` config section pointing the bot at the fake."""
    return {
        "bot_token": BOT_TOKEN,
        "signing_secret": SIGNING_SECRET,
        "api_url": fake.api_url,
        **overrides,
    }
