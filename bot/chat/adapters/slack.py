"""Slack on slack-bolt: incidents out as Block Kit threads; messages, clicks and commands in.

Listeners only translate a request into an `InboundMessage` and hand it to `accept`, which
commits it (once per event id) before Slack is acknowledged: Bolt runs with
`process_before_response=True`, so the acknowledgement *is* the commit, well inside Slack's
3 seconds, and a failed commit answers 500 so that Slack retries. Outbound calls make one
attempt each; the outbox retries, so Slack's answers become `integrations.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable
from typing import Any

import aiohttp
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.app.config import SlackConfig
from bot.chat.adapters.base import (
    Accept,
    Capabilities,
    InboundMessage,
    Reply,
    RootView,
    StormDigest,
    ThreadRef,
)
from bot.chat.renderers import block_kit
from integrations.errors import IntegrationError, PermanentError, RateLimited, TransientError

log = structlog.get_logger(__name__)

Json = dict[str, Any]

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
DEFAULT_RETRY_AFTER_S = 5.0
# Slack error codes a later attempt can get past; every other refusal is permanent.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# A person's message: plain, also sent to the channel from a thread, or with files.
HUMAN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
# A root carries its idempotency key as message metadata, found again in the channel's history.
ROOT_EVENT = "opsbot_incident_root"
STORM_EVENT = "opsbot_storm_digest"
HISTORY_SCAN = 200  # messages back: a lost answer is found in the minutes after it was lost

INCIDENT_REF = re.compile(r"\s*#\d+\b")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_LINK = re.compile(r"<([^@#!>][^|>]*)(?:\|[^>]*)?>")


def plain_text(text: str, bot_user_id: str | None = None) -> str:
    """Slack markup as a person reads it: the bot's own mention removed, other mentions as
    `@U123` (what the people directory matches), links as their URLs, entities decoded."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text)
    text = _USER.sub(r"@\1", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _SPECIAL.sub(r"@\1", text)
    text = _LINK.sub(r"\1", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def from_message_event(event: Json, bot_user_id: str | None) -> InboundMessage | None:
    """A person's message in one of the bot's threads, or a mention anywhere; else None.

    The event id is the message itself (channel and ts), not the Events API `event_id`: a
    mention in a thread arrives twice (`message` and `app_mention`, two event ids), and a
    retry once more; all of them must count once.
    """
    if event.get("subtype") not in HUMAN_SUBTYPES or event.get("bot_id") or not event.get("user"):
        return None  # edits, deletions, joins, and every bot (ourselves included)
    raw = event.get("text") or ""
    mentioned = event["type"] == "app_mention" or (
        bot_user_id is not None and f"<@{bot_user_id}" in raw
    )
    thread_ts = event.get("thread_ts")
    in_our_thread = thread_ts is not None and event.get("parent_user_id") in (None, bot_user_id)
    direct = event.get("channel_type") == "im"  # a DM to the bot: every message is for it
    # "#42" said in the channel: an incident named in a storm's digest is asked for
    names_incident = thread_ts is None and INCIDENT_REF.match(raw) is not None
    if not (mentioned or in_our_thread or direct or names_incident):
        return None  # channel chatter and other people's threads
    channel = event["channel"]
    return InboundMessage(
        platform=PLATFORM,
        channel=channel,
        user_id=event["user"],
        text=plain_text(raw, bot_user_id),
        event_id=f"{channel}:{event['ts']}",
        thread=ThreadRef(PLATFORM, channel, thread_ts) if thread_ts else None,
        mentioned=mentioned,
    )


def from_block_action(body: Json, action: Json) -> InboundMessage:
    """A button click: its action_id and value, in the thread of the message it sits on."""
    container, message = body.get("container") or {}, body.get("message") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
    message_ts = container.get("message_ts") or message.get("ts", "")
    thread_ts = message.get("thread_ts") or container.get("thread_ts") or message_ts
    user = body["user"]
    return InboundMessage(
        platform=PLATFORM,
        channel=channel,
        user_id=user["id"],
        text=(action.get("text") or {}).get("text", ""),
        event_id=f"{message_ts}:{action['action_ts']}:{user['id']}",
        thread=ThreadRef(PLATFORM, channel, thread_ts),
        user_name=user.get("username") or user.get("name"),
        action=action["action_id"],
        action_value=action.get("value"),
    )


def from_command(command: Json) -> InboundMessage:
    """`/incident <text>` → command "incident" with that text, in the channel it was typed in."""
    return InboundMessage(
        platform=PLATFORM,
        channel=command["channel_id"],
        user_id=command["user_id"],
        text=plain_text(command.get("text") or ""),
        event_id=command["trigger_id"],
        user_name=command.get("user_name"),
        command=command["command"].lstrip("/"),
    )


def translate(exc: SlackApiError) -> IntegrationError:
    """429 → RateLimited(Retry-After); 5xx, outages and Slack's own hiccups → TransientError;
    a refusal such as channel_not_found, not_in_channel or invalid_auth → PermanentError."""
    resp = exc.response
    if not isinstance(resp, AsyncSlackResponse):  # the body was not Slack's JSON
        return TransientError(f"Slack answered something unreadable: {exc}")
    method = str(resp.api_url).rsplit("/", 1)[-1]
    error = resp.get("error") if isinstance(resp.data, dict) else None
    what = f"Slack {method}: {error or f'HTTP {resp.status_code}'}"
    if resp.status_code == 429 or error == "ratelimited":
        retry_after = resp.headers.get("Retry-After")
        return RateLimited(what, float(retry_after) if retry_after else DEFAULT_RETRY_AFTER_S)
    if resp.status_code >= 500 or error in TRANSIENT_ERRORS:
        return TransientError(what)
    return PermanentError(what)  # a Slack refusal, or a 4xx from a wrong api_url


class SlackAdapter:
    """The `ChatAdapter` for Slack, plus `mount` (HTTP events) and `start`/`stop` (Socket Mode)."""

    platform = PLATFORM
    capabilities = Capabilities(
        can_edit=True,
        has_threads=True,
        buttons_per_message=25,  # one actions block holds 25 elements
        buttons_per_row=25,
        confirm_step=True,
        max_length=block_kit.SECTION_MAX,
        markup="block_kit",
        mention="<@{user_id}>",
    )

    def __init__(self, cfg: SlackConfig, accept: Accept) -> None:
        self.cfg, self.accept = cfg, accept
        # No retry handlers: one attempt per call, and the outbox retries (after Retry-After).
        base_url = cfg.api_url if cfg.api_url.endswith("/") else cfg.api_url + "/"
        self.client = AsyncWebClient(token=cfg.bot_token, base_url=base_url, retry_handlers=[])
        self.app = AsyncApp(
            name="opsbot",
            client=self.client,
            signing_secret=cfg.signing_secret,
            process_before_response=True,
        )
        self.app.event("message")(self._on_event)
        self.app.event("app_mention")(self._on_event)
        self.app.action(re.compile(".+"))(self._on_action)
        self.app.command(re.compile(".+"))(self._on_command)
        self._socket: AsyncSocketModeHandler | None = None
        self._connecting: asyncio.Task[None] | None = None

    # ---- inbound --------------------------------------------------------------------------
    async def _on_event(self, event: Json, context: AsyncBoltContext) -> None:
        msg = from_message_event(event, context.bot_user_id)
        if msg is not None:
            await self.accept(msg)

    async def _on_action(self, body: Json, action: Json, ack: AsyncAck) -> None:
        await self.accept(from_block_action(body, action))
        await ack()

    async def _on_command(self, command: Json, ack: AsyncAck) -> None:
        await self.accept(from_command(command))
        await ack(response_type="in_channel")  # the command stays visible above the answer

    def mount(self, app: FastAPI) -> None:
        """Serve the Events API, interactivity and slash commands on `POST /slack/events`."""
        if not self.cfg.signing_secret:
            if not self.cfg.app_token:
                log.warning("slack.inbound_disabled", reason="no signing_secret and no app_token")
            return
        handler = AsyncSlackRequestHandler(self.app)
        verifier = SignatureVerifier(self.cfg.signing_secret)

        async def slack_events(request: Request) -> Response:
            # Bolt parses the body before it checks the signature: check it first, so nothing
            # unsigned (or replayed after five minutes) is parsed at all.
            if not verifier.is_valid_request(await request.body(), dict(request.headers)):
                return JSONResponse({"error": "Slack signature missing, wrong or stale"}, 401)
            try:
                return await handler.handle(request)
            except ValueError as exc:  # a signed body Bolt cannot parse
                return JSONResponse({"error": f"unreadable Slack request: {exc}"}, 400)

        app.add_api_route(EVENTS_PATH, slack_events, methods=["POST"], include_in_schema=False)

    async def start(self) -> None:
        """Connect over Socket Mode when an app token is set; connecting goes on in the
        background (with the client's own reconnects) so a Slack outage never blocks start-up."""
        if not self.cfg.app_token:
            return
        self._socket = AsyncSocketModeHandler(self.app, self.cfg.app_token)
        self._connecting = asyncio.create_task(self._socket.connect_async())

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting

    # ---- outbound -------------------------------------------------------------------------
    async def _call(self, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            return await call
        except SlackApiError as exc:
            raise translate(exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"Slack is unreachable: {exc!r}") from exc

    async def post_root(self, channel: str, view: RootView, key: str | None = None) -> ThreadRef:
        text, blocks = block_kit.root(view, self.capabilities)
        metadata = {"event_type": ROOT_EVENT, "event_payload": {"key": key}} if key else None
        resp = await self._call(
            self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                metadata=metadata,
                unfurl_links=False,
                unfurl_media=False,
            )
        )
        # The configured channel, not Slack's answer: the router finds threads by it.
        return ThreadRef(PLATFORM, channel, resp["ts"])

    async def find_root(self, channel: str, key: str) -> ThreadRef | None:
        ts = await self._find_keyed(channel, ROOT_EVENT, key)
        return None if ts is None else ThreadRef(PLATFORM, channel, ts)

    async def find_digest(self, channel: str, key: str) -> str | None:
        return await self._find_keyed(channel, STORM_EVENT, key)

    async def _find_keyed(self, channel: str, event_type: str, key: str) -> str | None:
        """Slack has no idempotency key: look for the key in the metadata of recent messages."""
        resp = await self._call(
            self.client.conversations_history(
                channel=channel, include_all_metadata=True, limit=HISTORY_SCAN
            )
        )
        for message in resp.get("messages") or []:
            meta = message.get("metadata") or {}
            if (
                meta.get("event_type") == event_type
                and meta.get("event_payload", {}).get("key") == key
            ):
                return str(message["ts"])
        return None

    async def update_root(self, thread: ThreadRef, view: RootView) -> None:
        text, blocks = block_kit.root(view, self.capabilities)
        await self._call(
            self.client.chat_update(
                channel=thread.channel, ts=thread.thread_id, text=text, blocks=blocks
            )
        )

    async def reply(self, thread: ThreadRef, message: Reply) -> str:
        text, blocks = block_kit.reply(message, self.capabilities)
        resp = await self._call(
            self.client.chat_postMessage(
                channel=thread.channel,
                thread_ts=thread.thread_id or None,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        )
        return str(resp["ts"])

    async def post_digest(self, channel: str, digest: StormDigest, key: str) -> str:
        text, blocks = block_kit.storm(digest, self.capabilities)
        resp = await self._call(
            self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                metadata={"event_type": STORM_EVENT, "event_payload": {"key": key}},
                unfurl_links=False,
                unfurl_media=False,
            )
        )
        return str(resp["ts"])

    async def update_digest(self, channel: str, message_id: str, digest: StormDigest) -> None:
        text, blocks = block_kit.storm(digest, self.capabilities)
        await self._call(
            self.client.chat_update(channel=channel, ts=message_id, text=text, blocks=blocks)
        )

    async def permalink(self, thread: ThreadRef) -> str | None:
        resp = await self._call(
            self.client.chat_getPermalink(channel=thread.channel, message_ts=thread.thread_id)
        )
        return resp.get("permalink")
