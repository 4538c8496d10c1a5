"""Discord on discord.py: incidents out as embeds with a thread each; messages, clicks and
slash commands in, over the gateway or signed HTTP interactions.

Inbound events are translated into `InboundMessage`s and committed by `accept` (once per
message or interaction id) before Discord is answered: an interaction gets a deferred answer
within Discord's 3 seconds, the real answer follows through the interaction's webhook. The
gateway holds one session per bot token, so only the leader holds it (`lead`); the other
replicas send over REST. Outbound calls on the leader wait in the outbox while its gateway is
down; Discord's answers become `integrations.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

import aiohttp
import discord
import structlog
import yarl
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from bot.app.config import DiscordConfig
from bot.chat.adapters.base import (
    Accept,
    Capabilities,
    InboundMessage,
    Reply,
    RootView,
    StormDigest,
    ThreadRef,
)
from bot.chat.renderers import discord_embeds
from bot.chat.renderers.discord_embeds import (
    NO_MENTIONS,
    Rendered,
    confirm_prompt,
    parse_custom_id,
    thread_name,
)
from integrations.errors import (
    IntegrationError,
    PayloadError,
    PermanentError,
    RateLimited,
    SignatureError,
    TransientError,
)

log = structlog.get_logger(__name__)

Json = dict[str, Any]
T = TypeVar("T")

PLATFORM = "discord"
INTERACTIONS_PATH = "/discord/interactions"
MAX_SIGNATURE_AGE_S = 300  # a signed request older (or newer) than this is a replay
MAX_RATELIMIT_WAIT_S = 30.0  # longer waits go back to the outbox as RateLimited
THREAD_ARCHIVE_MIN: Literal[10080] = 10080  # a week: incident threads stay in the list
THREAD_TYPES = frozenset({10, 11, 12})  # announcement, public and private threads
THREAD_EXISTS = 160004  # "A thread has already been created for this message"
# Interaction types and the answers opsbot gives (discord.com/developers/docs/interactions)
PING, COMMAND, COMPONENT = 1, 2, 3
PONG, MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE = 1, 4, 5, 6, 7
EPHEMERAL = 1 << 6
# The reply target of a slash command: its interaction's webhook, valid for 15 minutes.
INTERACTION_THREAD = "interaction:"


def _option(name: str, description: str, *, required: bool = False, **extra: Any) -> Json:
    return {"type": 3, "name": name, "description": description, "required": required, **extra}


_INCIDENT = _option("incident", "#N; this thread's incident when left out")
COMMANDS: tuple[Json, ...] = (
    {
        "name": "incident",
        "description": "Open an incident and diagnose it",
        "options": [_option("description", "What is wrong", required=True)],
    },
    {"name": "ack", "description": "Acknowledge an incident", "options": [_INCIDENT]},
    {"name": "resolve", "description": "Resolve an incident", "options": [_INCIDENT]},
    {"name": "status", "description": "Where an incident stands", "options": [_INCIDENT]},
    {"name": "stats", "description": "Incidents, MTTA/MTTR and diagnosis sources"},
    {
        "name": "chaos",
        "description": "Make every LLM call fail (or stop), to show the fallbacks",
        "options": [
            _option(
                "mode",
                "on or off",
                required=True,
                choices=[{"name": "on", "value": "on"}, {"name": "off", "value": "off"}],
            )
        ],
        "default_member_permissions": str(discord.Permissions.administrator.flag),
    },
    {"name": "oncall", "description": "Who is on call"},
)
# Commands whose answer only the asker needs: it is shown to them alone.
EPHEMERAL_COMMANDS = frozenset({"status", "stats", "oncall"})


def intents() -> discord.Intents:
    """Guilds (channels, threads), guild messages, and their content (privileged)."""
    wanted = discord.Intents.none()
    wanted.guilds = wanted.guild_messages = wanted.message_content = True
    return wanted


def verify(public_key: str, signature: str, timestamp: str, body: bytes, now: float) -> None:
    """Discord's Ed25519 signature over timestamp + body, from a recent timestamp."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        key.verify(bytes.fromhex(signature), timestamp.encode() + body)
    except (ValueError, InvalidSignature) as exc:
        raise SignatureError("bad or missing X-Signature-Ed25519") from exc
    if not timestamp.isdigit() or abs(now - int(timestamp)) > MAX_SIGNATURE_AGE_S:
        raise SignatureError("stale X-Signature-Timestamp")


def _where(channel: Json, message_id: str | None) -> tuple[str, ThreadRef | None]:
    """(channel, thread): a message in a thread belongs to it; a root message (in the parent
    channel) to the thread started from it, which has the root's id."""
    channel_id = str(channel.get("id") or "")
    if channel.get("type") in THREAD_TYPES and channel.get("parent_id"):
        parent = str(channel["parent_id"])
        return parent, ThreadRef(PLATFORM, parent, channel_id)
    if message_id:
        return channel_id, ThreadRef(PLATFORM, channel_id, message_id)
    return channel_id, None


def from_interaction(payload: Json) -> InboundMessage | None:
    """A slash command or a button click → an `InboundMessage`; None for anything else."""
    kind = payload.get("type")
    if kind not in (COMMAND, COMPONENT):
        return None
    user = (payload.get("member") or {}).get("user") or payload.get("user") or {}
    data = payload.get("data") or {}
    channel = payload.get("channel") or {"id": payload.get("channel_id")}
    command = action = value = respond_to = None
    if kind == COMMAND:
        command = str(data.get("name", ""))
        args = " ".join(str(o.get("value", "")) for o in data.get("options") or [])
        text = args if command == "incident" else f"{command} {args}".strip()
        where, thread = _where(channel, None)
        respond_to = f"{INTERACTION_THREAD}{payload['token']}"
    else:
        action, value, _ = parse_custom_id(str(data.get("custom_id", "")))
        text = action
        message = payload.get("message") or {}
        # a click on an "are you sure?" (only its asker sees it) names its incident by value
        root = None if int(message.get("flags") or 0) & EPHEMERAL else message.get("id")
        where, thread = _where(channel, str(root) if root else None)
    return InboundMessage(
        platform=PLATFORM,
        channel=where,
        user_id=str(user.get("id", "")),
        text=text,
        event_id=f"interaction:{payload['id']}",
        thread=thread,
        user_name=user.get("username"),
        action=action,
        action_value=value or None,
        command=command,
        respond_to=respond_to,
    )


def interaction_json(i: discord.Interaction[Any]) -> Json:
    """What discord.py parsed from INTERACTION_CREATE, as the HTTP endpoint receives it."""
    channel: Json = {"id": str(i.channel_id or "")}
    if isinstance(i.channel, discord.Thread):
        channel |= {"type": i.channel.type.value, "parent_id": str(i.channel.parent_id)}
    payload: Json = {
        "id": str(i.id),
        "type": i.type.value,
        "token": i.token,
        "data": dict(i.data or {}),
        "channel": channel,
        "user": {"id": str(i.user.id), "username": i.user.name},
    }
    if i.message is not None:
        payload["message"] = {
            "id": str(i.message.id),
            "flags": i.message.flags.value,
            "components": [c.to_dict() for c in i.message.components],
        }
    return payload


def _button_label(payload: Json, custom_id: str) -> str:
    for row in (payload.get("message") or {}).get("components") or []:
        for c in row.get("components") or []:
            if c.get("custom_id") == custom_id:
                return str(c.get("label") or "This action")
    return "This action"


def _callback_data(rendered: Rendered, *, ephemeral: bool) -> Json:
    data: Json = {"content": rendered.content, "allowed_mentions": NO_MENTIONS.to_dict()}
    data["components"] = rendered.view.to_components() if rendered.view else []
    if ephemeral:
        data["flags"] = EPHEMERAL
    return data


def translate(exc: Exception) -> IntegrationError:
    """Discord's answers: a long 429 → RateLimited; 5xx and unreachable → TransientError;
    a refusal (unknown channel, missing permission, bad token) → PermanentError."""
    if isinstance(exc, discord.RateLimited):
        return RateLimited(f"Discord rate limit: {exc}", exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        what = f"Discord {exc.status} (code {exc.code}): {exc.text}"
        if exc.status == 429:  # without Via: Cloudflare's, which discord.py does not retry
            retry_after = exc.response.headers.get("Retry-After")
            return RateLimited(what, float(retry_after) if retry_after else MAX_RATELIMIT_WAIT_S)
        if exc.status >= 500:
            return TransientError(what)
        return PermanentError(what)
    return TransientError(f"Discord is unreachable: {exc!r}")


def nonce(key: str) -> str:
    """Discord keeps a nonce of at most 25 characters: a digest of the idempotency key."""
    return hashlib.sha256(key.encode()).hexdigest()[:25]


class DiscordAdapter:
    """The `ChatAdapter` for Discord, plus `mount` (HTTP interactions), `start`/`stop` (login
    and command registration, in the background) and `lead` (the gateway, on the leader)."""

    platform = PLATFORM
    capabilities = Capabilities(
        can_edit=True,
        has_threads=True,
        buttons_per_message=discord_embeds.BUTTONS_PER_ROW * discord_embeds.ROWS_MAX,
        buttons_per_row=discord_embeds.BUTTONS_PER_ROW,
        confirm_step=False,  # a dangerous button asks in an ephemeral message instead
        max_length=discord_embeds.CONTENT_MAX,
        markup="discord_embeds",
        mention="<@{user_id}>",
    )

    def __init__(self, cfg: DiscordConfig, accept: Accept) -> None:
        self.cfg, self.accept = cfg, accept
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # no voice here
        self.client = discord.Client(
            intents=intents(),
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT_S,
            allowed_mentions=NO_MENTIONS,
        )
        # Outbound may go: logged in, and the gateway up if this replica should hold it.
        self.ready = asyncio.Event()
        self._logged_in = asyncio.Event()
        self._leading = False
        self._gateway: asyncio.Task[None] | None = None
        for handler in (
            self.on_message,
            self.on_interaction,
            self.on_connect,
            self.on_resumed,
            self.on_disconnect,
        ):
            self.client.event(handler)
        self._running: asyncio.Task[None] | None = None

    @property
    def application_id(self) -> int | None:
        """As configured, else as Discord reported it at login."""
        if self.cfg.application_id:
            return int(self.cfg.application_id)
        return self.client.application_id

    async def on_connect(self) -> None:
        self.ready.set()
        log.info("discord.gateway", connected=True)

    async def on_resumed(self) -> None:
        await self.on_connect()

    async def on_disconnect(self) -> None:
        if self._leading:  # a lost session, not a hand-over: wait for discord.py to resume
            self.ready.clear()
        log.info("discord.gateway", connected=False)

    # ---- connection -----------------------------------------------------------------------
    async def start(self) -> None:
        """Log in and register the slash commands in the background, so a Discord outage never
        blocks start-up; the gateway waits for `lead(True)`."""
        # discord.py reads the REST base (and the gateway, below) from class attributes: one
        # Discord per process, which is all a bot needs.
        discord.http.Route.BASE = self.cfg.api_url.rstrip("/")
        self._running = asyncio.create_task(self._login(), name="discord-login")

    async def _login(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.client.login(self.cfg.bot_token)
                break
            except discord.LoginFailure:
                log.error("discord.login_failed", reason="the bot token was refused")
                return
            except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
                log.warning("discord.login_retry", error=str(exc), in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        await self.register_commands()
        self._logged_in.set()
        if not self._leading:
            self.ready.set()  # REST is enough on a replica that does not lead

    async def lead(self, leading: bool) -> None:
        """The leader's singleton (`Leadership.on_change`): hold the gateway session while this
        replica leads (and `discord.gateway` allows it), close it when it stops leading."""
        leading = leading and self.cfg.gateway
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            self.ready.clear()
            self._gateway = asyncio.create_task(self._hold_gateway(), name="discord-gateway")
            return
        gateway, self._gateway = self._gateway, None
        if gateway is not None:
            gateway.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await gateway
        ws = self.client.ws
        if ws is not None and ws.open:
            await ws.close(code=1000)  # ends the session: the next leader identifies anew
        log.info("discord.gateway", connected=False, handed_over=True)
        if self._logged_in.is_set():
            self.ready.set()

    async def _hold_gateway(self) -> None:
        await self._logged_in.wait()
        try:
            # Ask Discord where the gateway is (discord.py 2.7 would go to the public one).
            _, url, _ = await self.client.http.get_bot_gateway()
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            log.error("discord.gateway_refused", reason="switch on the Message Content Intent")
        except (discord.DiscordException, aiohttp.ClientError, OSError) as exc:
            log.error("discord.gateway_failed", error=repr(exc))

    async def register_commands(self) -> None:
        """Slash commands to the configured guild (at once), or globally (within an hour)."""
        app_id = self.application_id
        if app_id is None:
            log.warning("discord.commands_skipped", reason="no application_id")
            return
        try:
            if self.cfg.guild_id:
                await self.client.http.bulk_upsert_guild_commands(
                    app_id, int(self.cfg.guild_id), list(COMMANDS)
                )
            else:
                await self.client.http.bulk_upsert_global_commands(app_id, list(COMMANDS))
        except discord.HTTPException as exc:
            log.error("discord.commands_failed", status=exc.status, error=exc.text)

    async def stop(self) -> None:
        await self.client.close()
        for task in (self._running, self._gateway):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # ---- inbound: messages ----------------------------------------------------------------
    async def on_message(self, message: discord.Message) -> None:
        """A person's message in one of the bot's threads, or one that mentions the bot."""
        me = self.client.user
        if message.author.bot or me is None or message.guild is None:
            return
        channel: Any = message.channel
        if not isinstance(channel, discord.Thread | discord.TextChannel):
            channel = await self.client.fetch_channel(channel.id)  # not cached yet
        mentioned = me in message.mentions
        ours = isinstance(channel, discord.Thread) and channel.owner_id == me.id
        if not (ours or mentioned):
            return
        raw: Json = {"id": channel.id}
        if isinstance(channel, discord.Thread):
            raw |= {"type": channel.type.value, "parent_id": channel.parent_id}
        where, thread = _where(raw, None)
        text = message.content.replace(me.mention, "").replace(f"<@!{me.id}>", "").strip()
        await self.accept(
            InboundMessage(
                platform=PLATFORM,
                channel=where,
                user_id=str(message.author.id),
                text=text,
                event_id=f"message:{message.id}",
                thread=thread,
                user_name=message.author.name,
                mentioned=mentioned,
                reply_to=str(message.reference.message_id)
                if message.reference and message.reference.message_id
                else None,
            )
        )

    # ---- inbound: interactions ------------------------------------------------------------
    async def interact(self, payload: Json) -> Json:
        """Commit an interaction and return Discord's answer to it (within 3 seconds)."""
        kind = payload.get("type")
        if kind == PING:
            return {"type": PONG}
        custom_id = str((payload.get("data") or {}).get("custom_id", ""))
        action_id, value, ask_first = parse_custom_id(custom_id)
        if kind == COMPONENT and action_id == "cancel":
            return {"type": UPDATE, "data": {"content": "Cancelled.", "components": []}}
        if kind == COMPONENT and ask_first:  # Discord has no confirm dialog: ask here
            label = _button_label(payload, custom_id)
            prompt = confirm_prompt(label, action_id, value, self.capabilities)
            return {"type": MESSAGE, "data": _callback_data(prompt, ephemeral=True)}
        msg = from_interaction(payload)
        if msg is None:
            raise PayloadError(f"unsupported interaction type {kind}", "type")
        await self.accept(msg)  # a repeated interaction id is committed once
        if msg.command is None:
            return {"type": DEFERRED_UPDATE}
        data = {"flags": EPHEMERAL} if msg.command in EPHEMERAL_COMMANDS else {}
        return {"type": DEFERRED_MESSAGE, "data": data}

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Gateway interactions: the same answers, sent to the interaction callback."""
        payload = interaction_json(interaction)
        try:
            answer = await self.interact(payload)
        except PayloadError:
            return
        route = discord.http.Route(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            interaction_id=interaction.id,
            interaction_token=interaction.token,
        )
        await self._call(self.client.http.request(route, json=answer))

    def mount(self, app: FastAPI) -> None:
        """Serve `POST /discord/interactions` when a public key verifies its signatures."""
        if not self.cfg.public_key:
            return

        async def interactions(request: Request) -> Response:
            body = await request.body()
            try:
                verify(
                    self.cfg.public_key,
                    request.headers.get("X-Signature-Ed25519", ""),
                    request.headers.get("X-Signature-Timestamp", ""),
                    body,
                    time.time(),
                )
            except SignatureError as exc:
                return JSONResponse({"error": str(exc)}, 401)
            try:
                payload = json.loads(body)
                if not isinstance(payload, dict) or "id" not in payload:
                    raise ValueError("an interaction is an object with an id")
            except ValueError as exc:
                return JSONResponse({"error": f"invalid interaction: {exc}"}, 400)
            try:
                return JSONResponse(await self.interact(payload))
            except PayloadError as exc:
                return JSONResponse({"error": str(exc)}, 400)

        app.add_api_route(
            INTERACTIONS_PATH, interactions, methods=["POST"], include_in_schema=False
        )

    # ---- outbound -------------------------------------------------------------------------
    async def _call(self, call: Awaitable[T]) -> T:
        if not self.ready.is_set():
            if asyncio.iscoroutine(call):
                call.close()
            raise TransientError("the Discord gateway is down; waiting in the outbox")
        try:
            return await call
        except (discord.DiscordException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise translate(exc) from exc

    def _channel(self, channel_id: str) -> discord.PartialMessageable:
        guild_id = int(self.cfg.guild_id) if self.cfg.guild_id else None
        return self.client.get_partial_messageable(int(channel_id), guild_id=guild_id)

    async def post_root(self, channel: str, view: RootView, key: str | None = None) -> ThreadRef:
        """The embed (with a nonce Discord honours, so a retry returns the same message),
        then a thread started from it: the thread has the message's id."""
        rendered = discord_embeds.root(view, self.capabilities)
        sent = await self._call(
            self._channel(channel).send(
                **rendered.kwargs(),
                nonce=nonce(key or f"root:{view.incident_id}:{channel}"),
                allowed_mentions=NO_MENTIONS,
            )
        )
        try:
            await self._call(
                self.client.http.start_thread_with_message(
                    int(channel),
                    sent.id,
                    name=thread_name(view),
                    auto_archive_duration=THREAD_ARCHIVE_MIN,
                    rate_limit_per_user=None,
                )
            )
        except PermanentError as exc:
            if exc.__cause__ is None or getattr(exc.__cause__, "code", None) != THREAD_EXISTS:
                raise
        return ThreadRef(PLATFORM, channel, str(sent.id))

    async def update_root(self, thread: ThreadRef, view: RootView) -> None:
        rendered = discord_embeds.root(view, self.capabilities)
        message = self._channel(thread.channel).get_partial_message(int(thread.thread_id))
        await self._call(message.edit(**rendered.kwargs(), allowed_mentions=NO_MENTIONS))

    async def post_digest(self, channel: str, digest: StormDigest, key: str) -> str:
        rendered = discord_embeds.storm(digest, self.capabilities)
        sent = await self._call(
            self._channel(channel).send(
                **rendered.kwargs(), nonce=nonce(key), allowed_mentions=NO_MENTIONS
            )
        )
        return str(sent.id)

    async def find_digest(self, channel: str, key: str) -> str | None:
        return None  # posting again with the key's nonce returns the lost attempt's message

    async def update_digest(self, channel: str, message_id: str, digest: StormDigest) -> None:
        rendered = discord_embeds.storm(digest, self.capabilities)
        message = self._channel(channel).get_partial_message(int(message_id))
        await self._call(message.edit(**rendered.kwargs(), allowed_mentions=NO_MENTIONS))

    async def find_root(self, channel: str, key: str) -> ThreadRef | None:
        """None: posting again with the key's nonce returns the message the lost attempt made
        (Discord honours `enforce_nonce` for a few minutes), and its thread already exists."""
        return None

    async def reply(self, thread: ThreadRef, message: Reply) -> str:
        rendered = discord_embeds.reply(message, self.capabilities)
        if thread.thread_id.startswith(INTERACTION_THREAD):
            return await self._followup(thread.thread_id.removeprefix(INTERACTION_THREAD), rendered)
        target = self._channel(thread.thread_id or thread.channel)
        sent = await self._call(
            target.send(
                **{k: v for k, v in rendered.kwargs().items() if v is not None},
                nonce=nonce(message.key or uuid.uuid4().hex),
                allowed_mentions=NO_MENTIONS,
            )
        )
        return str(sent.id)

    async def _followup(self, token: str, rendered: Rendered) -> str:
        """The real answer to a deferred slash command, through its interaction webhook."""
        webhook = discord.Webhook.partial(self.application_id or 0, token, client=self.client)
        sent = await self._call(
            webhook.send(
                **{k: v for k, v in rendered.kwargs().items() if v is not None},
                allowed_mentions=NO_MENTIONS,
                wait=True,
            )
        )
        return str(sent.id)

    async def permalink(self, thread: ThreadRef) -> str | None:
        guild = self.cfg.guild_id or "@me"
        return f"https://discord.com/channels/{guild}/{thread.thread_id}"
