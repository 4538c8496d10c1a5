"""A fake Discord on 127.0.0.1: the REST API (v10) opsbot calls and a gateway WebSocket.

The real discord.py reaches it through `discord.api_url`: REST under `/api/v10` (the bot user,
`gateway/bot`, channels, messages with `nonce`/`enforce_nonce`, edits, threads from a message,
interaction callbacks and follow-up webhooks, application commands, 429s with `retry_after`)
and a gateway speaking the real opcodes (HELLO, IDENTIFY, HEARTBEAT/ACK, READY, GUILD_CREATE,
dispatches, RESUME with replay of what a dropped connection missed). People act through it:
`say` posts a message as a person, `slash` and `click` send interactions, over the gateway or
signed (Ed25519) to the bot's `POST /discord/interactions`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import WSMsgType, web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

Json = dict[str, Any]

BOT_TOKEN = "fake-discord-bot-token"
APPLICATION_ID = "1100000000000000001"
GUILD_ID = "1100000000000000002"
BOT_USER_ID = "1100000000000000003"
INCIDENTS, ALERTS = "1100000000000000010", "1100000000000000011"
RAVI, MALLORY = "80351110224678912", "80351110224678913"
ADMIN_ROLE = "1100000000000000020"
HEARTBEAT_INTERVAL_MS = 41250
EPHEMERAL = 1 << 6
MAX_CONTENT, MAX_EMBEDS, MAX_ROWS, MAX_BUTTONS_PER_ROW = 2000, 10, 5, 5
MAX_TITLE, MAX_FIELDS, MAX_FIELD_VALUE = 256, 25, 1024
_snowflakes = itertools.count(1_200_000_000_000_000_000)


def snowflake() -> str:
    return str(next(_snowflakes))


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _user(user_id: str, name: str, *, bot: bool = False) -> Json:
    return {
        "id": user_id,
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


@dataclass(slots=True)
class DiscordMessage:
    id: str
    channel_id: str
    author: Json
    content: str = ""
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    nonce: str | None = None
    flags: int = 0
    allowed_mentions: Json | None = None
    edits: int = 0
    webhook_id: str | None = None

    def payload(self) -> Json:
        out: Json = {
            "id": self.id,
            "type": 0,
            "channel_id": self.channel_id,
            "guild_id": GUILD_ID,
            "author": self.author,
            "content": self.content,
            "timestamp": _now(),
            "edited_timestamp": _now() if self.edits else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "flags": self.flags,
        }
        if self.nonce is not None:
            out["nonce"] = self.nonce
        if self.webhook_id:
            out["webhook_id"] = self.webhook_id
        return out


@dataclass(slots=True)
class Interaction:
    """One interaction the fake sent, and how the bot answered it."""

    id: str
    token: str
    payload: Json
    callbacks: list[Json] = field(default_factory=list)
    followups: list[DiscordMessage] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Session:
    id: str
    intents: int
    seq: int = 0
    events: list[Json] = field(default_factory=list)  # every dispatch, for RESUME replays


@dataclass(slots=True)
class _Failure:
    remaining: int
    retry_after: float
    path: str | None
    status: int


class FakeDiscord:
    """State and handlers of one fake guild; `api_url` is what `discord.api_url` is set to."""

    def __init__(self) -> None:
        self.api_url = self.gateway_url = ""
        self.private_key = Ed25519PrivateKey.generate()
        self.public_key = (
            self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        )
        self.bot = _user(BOT_USER_ID, "opsbot", bot=True)
        self.users = {RAVI: _user(RAVI, "ravi"), MALLORY: _user(MALLORY, "mallory")}
        self.roles: dict[str, list[str]] = {RAVI: [ADMIN_ROLE]}
        self.channels: dict[str, Json] = {
            cid: {"id": cid, "type": 0, "guild_id": GUILD_ID, "name": name, "position": i}
            for i, (cid, name) in enumerate(((INCIDENTS, "incidents"), (ALERTS, "alerts")))
        }
        self.messages: dict[str, DiscordMessage] = {}
        self.interactions: dict[str, Interaction] = {}
        self.commands: dict[str, list[Json]] = {}  # "global" or a guild id → registered commands
        self.requests: list[tuple[str, str]] = []  # (method, path under /api/v10)
        self.identifies = self.resumes = 0
        self.connected = 0  # gateway connections open now (Discord allows one session a token)
        self.down = False  # an outage: REST answers 503 and the gateway refuses connections
        self.replay_overlap = 0  # RESUME also re-sends this many events the client had seen
        self._failures: list[_Failure] = []
        self._session: _Session | None = None
        self._ws: web.WebSocketResponse | None = None
        self._ready = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- test controls --------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, *, retry_after: float = 0.2, path: str | None = None, status: int = 429
    ) -> None:
        """Answer the next `n` REST calls (whose path contains `path`) with a 429 carrying
        `retry_after` and Discord's `Via` header, or with `status` (e.g. 503)."""
        self._failures.append(_Failure(n, retry_after, path, status))

    def add_user(self, user_id: str, name: str) -> None:
        """A member of the guild (Ravi and Mallory are there from the start)."""
        self.users[user_id] = _user(user_id, name)

    def in_channel(self, channel_id: str) -> list[DiscordMessage]:
        """Messages in a channel or thread, oldest first."""
        return [m for m in self.messages.values() if m.channel_id == channel_id]

    def roots(self, channel_id: str) -> list[DiscordMessage]:
        """The bot's own messages in a channel (not answers to interactions)."""
        return [
            m
            for m in self.in_channel(channel_id)
            if m.author["id"] == BOT_USER_ID and m.webhook_id is None
        ]

    async def wait_answered(self, interaction: Interaction, timeout_s: float = 10.0) -> Json:
        """Until the bot has answered the interaction (within Discord's 3 seconds, it must)."""
        await asyncio.wait_for(interaction.answered.wait(), timeout_s)
        return interaction.callbacks[0]

    def threads(self) -> list[Json]:
        return [c for c in self.channels.values() if c["type"] == 11]

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Until a client has identified (or resumed) on the gateway."""
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    async def drop_gateway(self) -> None:
        """Cut the gateway connection as a network fault would (the session stays resumable)."""
        self._ready.clear()
        if self._ws is not None:
            await self._ws.close(code=4000, message=b"connection dropped")

    async def say(self, channel_id: str, content: str, *, user: str = RAVI) -> DiscordMessage:
        """A person posts in a channel or thread: MESSAGE_CREATE goes to the bot."""
        msg = DiscordMessage(snowflake(), channel_id, self.users[user], content)
        self.messages[msg.id] = msg
        await self.dispatch("MESSAGE_CREATE", {**msg.payload(), "member": self._member(user)})
        return msg

    def slash_payload(
        self, name: str, options: dict[str, str] | None = None, *, channel_id: str, user: str = RAVI
    ) -> Json:
        data = {
            "id": snowflake(),
            "name": name,
            "type": 1,
            "options": [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()],
        }
        return self._interaction(2, data, channel_id, user)

    def click_payload(self, message: DiscordMessage, custom_id: str, *, user: str = RAVI) -> Json:
        data = {"custom_id": custom_id, "component_type": 2}
        payload = self._interaction(3, data, message.channel_id, user)
        payload["message"] = message.payload()
        return payload

    async def slash(self, *args: Any, **kw: Any) -> Interaction:
        """A slash command over the gateway (INTERACTION_CREATE)."""
        return await self._send_interaction(self.slash_payload(*args, **kw))

    async def click(self, *args: Any, **kw: Any) -> Interaction:
        """A button click over the gateway (INTERACTION_CREATE)."""
        return await self._send_interaction(self.click_payload(*args, **kw))

    async def post_interaction(
        self,
        bot_url: str,
        payload: Json,
        *,
        signed: bool = True,
        key: Ed25519PrivateKey | None = None,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """Send an interaction to an HTTP interactions endpoint, signed as Discord signs."""
        if "id" in payload and "token" in payload:
            self._record_interaction(payload)
        body = json.dumps(payload).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {"Content-Type": "application/json", "User-Agent": "Discord-Interactions/1.0"}
        if signed:
            signature = (key or self.private_key).sign(ts.encode() + body)
            headers |= {"X-Signature-Ed25519": signature.hex(), "X-Signature-Timestamp": ts}
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(
                f"{bot_url}/discord/interactions", content=body, headers=headers
            )

    def ping_payload(self) -> Json:
        return {
            "id": snowflake(),
            "application_id": APPLICATION_ID,
            "type": 1,
            "token": uuid.uuid4().hex,
            "version": 1,
        }

    # -- gateway dispatch -----------------------------------------------------------------

    async def dispatch(self, event: str, data: Json) -> None:
        """Send a dispatch (op 0) to the connected client, or keep it for its RESUME."""
        session = self._session
        if session is None:
            return
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if self._ws is not None and not self._ws.closed and self._ready.is_set():
            await self._ws.send_str(json.dumps(frame))

    def _member(self, user: str) -> Json:
        return {
            "user": self.users.get(user, self.bot),
            "roles": self.roles.get(user, []),
            "joined_at": _now(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
            "permissions": "2248473465835073",
        }

    def _interaction(self, kind: int, data: Json, channel_id: str, user: str) -> Json:
        return {
            "id": snowflake(),
            "application_id": APPLICATION_ID,
            "type": kind,
            "data": data,
            "guild_id": GUILD_ID,
            "guild": {"id": GUILD_ID, "locale": "en-US", "features": []},
            "channel_id": channel_id,
            "channel": self.channels[channel_id],
            "member": self._member(user),
            "token": f"itok-{uuid.uuid4().hex}",
            "version": 1,
            "app_permissions": "2248473465835073",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": GUILD_ID},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }

    def _record_interaction(self, payload: Json) -> Interaction:
        known = self.interactions.get(payload["id"])
        if known is None:
            known = Interaction(payload["id"], payload["token"], payload)
            self.interactions[payload["id"]] = known
        return known

    async def _send_interaction(self, payload: Json) -> Interaction:
        interaction = self._record_interaction(payload)
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    # -- serving --------------------------------------------------------------------------

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{port}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{port}/gateway"
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- REST -----------------------------------------------------------------------------

    _ROUTES: tuple[tuple[str, tuple[str, ...], str], ...] = (
        ("GET", ("users", "@me"), "_me"),
        ("GET", ("oauth2", "applications", "@me"), "_application"),
        ("GET", ("gateway", "bot"), "_gateway_bot"),
        ("GET", ("gateway",), "_gateway_bot"),
        ("GET", ("channels", "*"), "_get_channel"),
        ("POST", ("channels", "*", "messages"), "_create_message"),
        ("GET", ("channels", "*", "messages", "*"), "_get_message"),
        ("PATCH", ("channels", "*", "messages", "*"), "_edit_message"),
        ("POST", ("channels", "*", "messages", "*", "threads"), "_start_thread"),
        ("POST", ("interactions", "*", "*", "callback"), "_callback"),
        ("POST", ("webhooks", "*", "*"), "_followup"),
        ("PUT", ("applications", "*", "commands"), "_put_commands"),
        ("PUT", ("applications", "*", "guilds", "*", "commands"), "_put_commands"),
    )

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.requests.append((request.method, path))
        parts = tuple(path.strip("/").split("/"))
        if self.down:
            return _json({"message": "Service Unavailable", "code": 0}, status=503)
        failure = next((f for f in self._failures if f.remaining and (f.path or "") in path), None)
        if failure is not None:
            failure.remaining -= 1
            return _failure_response(failure)
        # interaction callbacks and webhooks are authorised by their token, not the bot's
        if parts[0] not in ("interactions", "webhooks") and (
            request.headers.get("Authorization") != f"Bot {BOT_TOKEN}"
        ):
            return _error(401, 0, "401: Unauthorized")
        for method, shape, name in self._ROUTES:
            if method == request.method and _matches(shape, parts):
                body = await request.json() if request.can_read_body else {}
                args = [p for s, p in zip(shape, parts, strict=True) if s == "*"]
                try:
                    return await getattr(self, name)(body, *args)
                except _DiscordError as exc:
                    return _error(exc.status, exc.code, exc.message)
        return _error(404, 0, "404: Not Found")

    async def _me(self, body: Json) -> web.Response:
        return _json(self.bot)

    async def _application(self, body: Json) -> web.Response:
        return _json(
            {
                "id": APPLICATION_ID,
                "name": "opsbot",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": self.users[RAVI],
                "verify_key": self.public_key,
                "flags": 0,
            }
        )

    async def _gateway_bot(self, body: Json) -> web.Response:
        return _json(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14400000,
                    "max_concurrency": 1,
                },
            }
        )

    def _channel(self, channel_id: str) -> Json:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise _DiscordError(404, 10003, "Unknown Channel")
        return channel

    async def _get_channel(self, body: Json, channel_id: str) -> web.Response:
        return _json(self._channel(channel_id))

    def _validate(self, body: Json) -> None:
        """Discord refuses what breaks its limits: content, embeds, rows and buttons."""
        if len(body.get("content") or "") > MAX_CONTENT:
            raise _DiscordError(400, 50035, "Invalid Form Body: content too long")
        embeds = body.get("embeds") or []
        if len(embeds) > MAX_EMBEDS:
            raise _DiscordError(400, 50035, "Invalid Form Body: too many embeds")
        for embed in embeds:
            too_long = len(embed.get("title") or "") > MAX_TITLE or any(
                len(f["value"]) > MAX_FIELD_VALUE for f in embed.get("fields", [])
            )
            if too_long or len(embed.get("fields", [])) > MAX_FIELDS:
                raise _DiscordError(400, 50035, "Invalid Form Body: embed too large")
        rows = body.get("components") or []
        if len(rows) > MAX_ROWS or any(
            r["type"] != 1 or not 0 < len(r["components"]) <= MAX_BUTTONS_PER_ROW for r in rows
        ):
            raise _DiscordError(400, 50035, "Invalid Form Body: components")
        for row in rows:
            for button in row["components"]:
                if button["type"] != 2 or len(button.get("custom_id", "")) > 100:
                    raise _DiscordError(400, 50035, "Invalid Form Body: button")
        if not (body.get("content") or embeds or rows):
            raise _DiscordError(400, 50006, "Cannot send an empty message")

    def _new_message(self, channel_id: str, body: Json, author: Json, **kw: Any) -> DiscordMessage:
        self._validate(body)
        msg = DiscordMessage(
            snowflake(),
            channel_id,
            author,
            body.get("content") or "",
            body.get("embeds") or [],
            body.get("components") or [],
            allowed_mentions=body.get("allowed_mentions"),
            **kw,
        )
        self.messages[msg.id] = msg
        return msg

    async def _create_message(self, body: Json, channel_id: str) -> web.Response:
        self._channel(channel_id)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            twin = next(
                (m for m in self.in_channel(channel_id) if m.nonce == str(nonce)),
                None,
            )
            if twin is not None:  # Discord returns the message that nonce already made
                return _json(twin.payload())
        msg = self._new_message(
            channel_id, body, self.bot, nonce=None if nonce is None else str(nonce)
        )
        await self.dispatch("MESSAGE_CREATE", msg.payload())
        return _json(msg.payload())

    def _message(self, channel_id: str, message_id: str) -> DiscordMessage:
        msg = self.messages.get(message_id)
        if msg is None or msg.channel_id != channel_id:
            raise _DiscordError(404, 10008, "Unknown Message")
        return msg

    async def _get_message(self, body: Json, channel_id: str, message_id: str) -> web.Response:
        return _json(self._message(channel_id, message_id).payload())

    def _edit(self, msg: DiscordMessage, body: Json) -> None:
        merged = {
            "content": body.get("content", msg.content),
            "embeds": body.get("embeds", msg.embeds),
            "components": body.get("components", msg.components),
        }
        self._validate(merged)
        msg.content, msg.embeds, msg.components = (
            merged["content"] or "",
            merged["embeds"] or [],
            merged["components"] or [],
        )
        msg.edits += 1

    async def _edit_message(self, body: Json, channel_id: str, message_id: str) -> web.Response:
        msg = self._message(channel_id, message_id)
        if msg.author["id"] != BOT_USER_ID:
            raise _DiscordError(403, 50005, "Cannot edit a message authored by another user")
        self._edit(msg, body)
        await self.dispatch("MESSAGE_UPDATE", msg.payload())
        return _json(msg.payload())

    async def _start_thread(self, body: Json, channel_id: str, message_id: str) -> web.Response:
        self._message(channel_id, message_id)
        if message_id in self.channels:
            raise _DiscordError(400, 160004, "A thread has already been created for this message")
        name = body.get("name") or ""
        if not 1 <= len(name) <= 100:
            raise _DiscordError(400, 50035, "Invalid Form Body: name")
        thread = {  # a thread started from a message has that message's id
            "id": message_id,
            "type": 11,
            "guild_id": GUILD_ID,
            "parent_id": channel_id,
            "owner_id": BOT_USER_ID,
            "name": name,
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration", 1440),
                "archive_timestamp": _now(),
                "locked": False,
            },
            "total_message_sent": 0,
        }
        self.channels[message_id] = thread
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread, status=201)

    def _interaction_by_token(self, token: str) -> Interaction:
        found = next((i for i in self.interactions.values() if i.token == token), None)
        if found is None:
            raise _DiscordError(404, 10015, "Unknown Webhook")
        return found

    async def _callback(self, body: Json, interaction_id: str, token: str) -> web.Response:
        interaction = self.interactions.get(interaction_id)
        if interaction is None or interaction.token != token:
            raise _DiscordError(404, 10062, "Unknown interaction")
        if interaction.callbacks:
            raise _DiscordError(400, 40060, "Interaction has already been acknowledged.")
        interaction.callbacks.append(body)
        interaction.answered.set()
        return web.Response(status=204)

    async def _followup(self, body: Json, application_id: str, token: str) -> web.Response:
        interaction = self._interaction_by_token(token)
        if application_id != APPLICATION_ID:
            raise _DiscordError(404, 10015, "Unknown Webhook")
        if not interaction.callbacks:
            raise _DiscordError(400, 40060, "The interaction has not been acknowledged")
        msg = self._new_message(
            interaction.payload["channel_id"],
            body,
            self.bot,
            webhook_id=APPLICATION_ID,
        )
        msg.flags = int(body.get("flags") or 0)
        if not interaction.followups:  # the first answers the deferral: it keeps its flags
            msg.flags |= int((interaction.callbacks[0].get("data") or {}).get("flags") or 0)
        if msg.flags & EPHEMERAL:
            del self.messages[msg.id]  # only the person who asked sees it
        interaction.followups.append(msg)
        return _json(msg.payload())

    async def _put_commands(self, body: Any, application_id: str, *guild: str) -> web.Response:
        if application_id != APPLICATION_ID:
            raise _DiscordError(403, 50001, "Missing Access")
        registered = [
            {**c, "id": snowflake(), "application_id": APPLICATION_ID, "version": snowflake()}
            for c in body
        ]
        self.commands[guild[0] if guild else "global"] = registered
        return _json(registered)

    # -- gateway --------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        self.connected += 1
        try:
            await ws.send_str(
                json.dumps({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
            )
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                msg = json.loads(frame.data)
                op, data = msg.get("op"), msg.get("d")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    await self._identify(ws, data)
                elif op == 6:
                    await self._resume(ws, data)
        finally:
            self.connected -= 1
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> None:
        if data.get("token") != BOT_TOKEN:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        self.identifies += 1
        self._session = _Session(uuid.uuid4().hex, int(data.get("intents") or 0))
        self._ready.set()
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": self.bot,
                "guilds": [{"id": GUILD_ID, "unavailable": True}],
                "session_id": self._session.id,
                "resume_gateway_url": self.gateway_url,
                "application": {"id": APPLICATION_ID, "flags": 0},
                "private_channels": [],
                "relationships": [],
            },
        )
        await self.dispatch("GUILD_CREATE", self._guild())

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> None:
        session = self._session
        if session is None or data.get("session_id") != session.id:
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return
        self.resumes += 1
        since = int(data.get("seq") or 0) - self.replay_overlap
        for frame in session.events:
            if frame["s"] > since:
                await ws.send_str(json.dumps(frame))
        self._ready.set()
        await self.dispatch("RESUMED", {})

    def _guild(self) -> Json:
        members = [self._member(uid) for uid in self.users] + [self._member(BOT_USER_ID)]
        return {
            "id": GUILD_ID,
            "name": "Fake Ops",
            "icon": None,
            "owner_id": RAVI,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [
                {"id": GUILD_ID, "name": "@everyone", "permissions": "1024", "position": 0},
                {"id": ADMIN_ROLE, "name": "ops-admin", "permissions": "8", "position": 1},
            ],
            "emojis": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_flags": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "member_count": len(members),
            "joined_at": _now(),
            "large": False,
            "unavailable": False,
            "members": members,
            "channels": [c for c in self.channels.values() if c["type"] != 11],
            "threads": self.threads(),
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "stickers": [],
        }


class _DiscordError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _matches(shape: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    return len(shape) == len(parts) and all(
        s in ("*", p) for s, p in zip(shape, parts, strict=True)
    )


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as Discord sends it: discord.py parses a body only when the type is exactly this."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status=status)


def _failure_response(failure: _Failure) -> web.Response:
    if failure.status != 429:
        return _error(failure.status, 0, "Service Unavailable")
    return _json(
        {
            "message": "You are being rate limited.",
            "retry_after": failure.retry_after,
            "global": False,
        },
        status=429,
        headers={  # discord.py takes a 429 without `Via` for a Cloudflare ban and gives up
            "Via": "1.1 google",
            "Retry-After": f"{failure.retry_after:g}",
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{failure.retry_after:g}",
            "X-RateLimit-Bucket": "fake-bucket",
            "X-RateLimit-Scope": "user",
        },
    )


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A running fake Discord guild with REST at `.api_url` and a gateway."""
    server = FakeDiscord()
    await server.start()
    yield server
    await server.stop()


def discord_settings(fake: FakeDiscord, **overrides: str) -> dict[str, str]:
    """The `discord:` config section pointing the bot at the fake."""
    return {
        "bot_token": BOT_TOKEN,
        "application_id": APPLICATION_ID,
        "guild_id": GUILD_ID,
        "api_url": fake.api_url,
        **overrides,
    }
