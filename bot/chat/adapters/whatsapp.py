"""WhatsApp through Twilio: a person's direct line, in plain text for a phone.

The line's channel is the person's number and a root's thread id its message sid; several
incidents share a line, and the router names each in what it sends ("#42 checkout: …").
Inbound webhooks are verified with Twilio's `RequestValidator` over the public URL
(`http.public_url`, so it works behind a proxy) and committed once per MessageSid before
Twilio gets its answer; status callbacks become `DeliveryStatus` reports. Outside WhatsApp's
24-hour window (nothing heard from the number for `session_window_s`) a page is sent as the
approved template, and other news waits for the person to write. Outbound calls make one
attempt each; the outbox retries.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import parse_qsl

import aiohttp
import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.app.config import Config
from bot.app.server.inbound import check_content_type, read_body
from bot.chat.adapters.base import (
    Accept,
    Capabilities,
    InboundMessage,
    Reply,
    RootView,
    StormDigest,
    ThreadRef,
)
from bot.chat.renderers import whatsapp_text
from bot.incidents import delivery
from bot.incidents.delivery import DeliveryStatus
from bot.incidents.models import Incident, aware, utcnow
from bot.store import Store
from bot.store import schema as t
from integrations.alerts.model import Severity
from integrations.errors import IntegrationError, PermanentError, RateLimited, TransientError

log = structlog.get_logger(__name__)

T = TypeVar("T")
OnStatus = Callable[[DeliveryStatus], Awaitable[None]]

PLATFORM = "whatsapp"
PREFIX = "whatsapp:"
INBOUND_PATH, STATUS_PATH = "/twilio/whatsapp", "/twilio/status"
FORM_TYPES = ("application/x-www-form-urlencoded",)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
REFUSAL = (
    "Hello! This is opsbot, the incident bot. This number is not in its on-call directory, "
    "so it cannot act on your messages. Please ask your team to add it."
)
RATE_LIMIT_BACKOFF_S = 5.0  # Twilio's 429 carries no Retry-After
TEMPLATE_VAR_CHARS = 300
PAGES = frozenset({"page"})  # reply kinds that reach a person outside the window too
LISTED = 50  # messages to a number looked through for a root whose answer was lost


def translate(exc: TwilioRestException) -> IntegrationError:
    """429 → RateLimited; 5xx → TransientError; any other refusal (a bad number, a template
    WhatsApp rejects, wrong credentials) → PermanentError."""
    what = f"Twilio: HTTP {exc.status} error {exc.code}: {exc.msg}"
    if exc.status == 429:
        return RateLimited(what, RATE_LIMIT_BACKOFF_S)
    if exc.status >= 500:
        return TransientError(what)
    return PermanentError(what)


def incident_fields(inc: Incident | RootView) -> dict[str, str]:
    """What fills a page's template for one incident."""
    return {
        "incident": f"#{inc.short_id}",
        "severity": inc.severity,
        "service": inc.service or "-",
        "title": inc.title,
    }


def storm_fields(digest: StormDigest) -> dict[str, str]:
    """What fills a page's template for a storm: its incidents' numbers, the most severe
    level among them, its service or how many, and its headline."""
    lines = digest.incidents
    services = sorted({line.service or "-" for line in lines})
    worst = Severity.worst(Severity(line.severity) for line in lines) if lines else None
    shorts = sorted(line.short_id for line in lines)
    return {
        "incident": f"#{shorts[0]}–#{shorts[-1]}" if shorts else "-",
        "severity": worst.value if worst else "-",
        "service": services[0] if len(services) == 1 else f"{len(services)} services",
        "title": digest.headline,
    }


def fields_of(about: Incident | RootView | StormDigest) -> dict[str, str]:
    return storm_fields(about) if isinstance(about, StormDigest) else incident_fields(about)


def twiml(text: str | None = None) -> Response:
    """A TwiML answer: empty, or one message back on the same line."""
    if text is None:
        body = EMPTY_TWIML
    else:
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        body = EMPTY_TWIML.replace("</Response>", f"<Message>{escaped}</Message></Response>")
    return Response(body, media_type="text/xml")


class WhatsAppAdapter:
    """The `ChatAdapter` for WhatsApp over Twilio, plus `mount` for its two webhooks."""

    platform = PLATFORM
    capabilities = Capabilities(
        can_edit=False,
        has_threads=False,  # a person's line, shared by their incidents
        buttons_per_message=0,
        buttons_per_row=0,
        confirm_step=False,
        max_length=1600,  # Twilio refuses longer bodies
        markup="whatsapp_text",
        mention="{user_id}",
    )

    def __init__(self, cfg: Config, store: Store, accept: Accept, on_status: OnStatus) -> None:
        self.cfg, self.wa, self.store = cfg, cfg.whatsapp, store
        self.accept, self.on_status = accept, on_status
        self.validator = RequestValidator(self.wa.auth_token)
        self._client: Client | None = None

    # ---- inbound --------------------------------------------------------------------------
    def mount(self, app: FastAPI) -> None:
        app.add_api_route(INBOUND_PATH, self._inbound, methods=["POST"], include_in_schema=False)
        app.add_api_route(STATUS_PATH, self._status, methods=["POST"], include_in_schema=False)

    async def _verified_form(self, request: Request) -> dict[str, str]:
        """The form fields, once `X-Twilio-Signature` proves Twilio sent them (else 403)."""
        check_content_type(request, FORM_TYPES)
        body = await read_body(request, self.cfg.http.max_body_bytes)
        try:
            form = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError as exc:
            raise HTTPException(400, "the form is not UTF-8") from exc
        url = str(request.url)
        if self.cfg.http.public_url:
            query = f"?{request.url.query}" if request.url.query else ""
            url = self.cfg.http.public_url.rstrip("/") + request.url.path + query
        signature = request.headers.get("x-twilio-signature", "")
        if not signature or not self.validator.validate(url, form, signature):
            log.warning("whatsapp.bad_signature", path=request.url.path)
            raise HTTPException(403, "missing or wrong X-Twilio-Signature")
        return form

    @staticmethod
    def _required(form: dict[str, str], *names: str) -> list[str]:
        missing = [n for n in names if not form.get(n)]
        if missing:
            raise HTTPException(400, f"missing form field(s): {', '.join(missing)}")
        return [form[n] for n in names]

    async def _inbound(self, request: Request) -> Response:
        form = await self._verified_form(request)
        sid, sender = self._required(form, "MessageSid", "From")
        number = sender.removeprefix(PREFIX)
        person = self.cfg.person(number)
        if person is None:
            return await self._refuse(sid, number)
        async with self.store.write() as conn:
            await delivery.heard_from(conn, PLATFORM, number, utcnow())
        msg = InboundMessage(
            platform=PLATFORM,
            channel=number,
            user_id=number,
            text=form.get("Body", "").strip(),
            event_id=sid,
            user_name=form.get("ProfileName") or person.name,
        )
        await self.accept(msg)  # committed once per MessageSid; a replay changes nothing
        return twiml()

    async def _refuse(self, sid: str, number: str) -> Response:
        """An unknown number: an audit entry, and one polite answer per window."""
        now = utcnow()
        since = now - timedelta(seconds=self.wa.session_window_s)
        try:
            async with self.store.write() as conn:
                await conn.execute(
                    insert(t.deliveries).values(
                        source=PLATFORM,
                        idem_key=sid,
                        received_at=now,
                        body="",
                        outcome="refused: unknown number",
                    )
                )
                answered = await conn.scalar(
                    select(t.audit.c.id).where(
                        t.audit.c.actor == number,
                        t.audit.c.action == "whatsapp_message",
                        t.audit.c.at >= since,
                    )
                )
                await conn.execute(
                    insert(t.audit).values(
                        at=now,
                        actor=number,
                        action="whatsapp_message",
                        target=PLATFORM,
                        decision="refused",
                        reason="the number is not in people[].whatsapp",
                    )
                )
        except IntegrityError:
            return twiml()  # Twilio re-sent a message we already refused
        log.info("whatsapp.unknown_number", answered=answered is not None)
        return twiml(None if answered is not None else REFUSAL)

    async def _status(self, request: Request) -> Response:
        form = await self._verified_form(request)
        sid, status = self._required(form, "MessageSid", "MessageStatus")
        await self.on_status(DeliveryStatus(PLATFORM, sid, status, form.get("ErrorCode") or None))
        return Response(status_code=204)

    # ---- outbound -------------------------------------------------------------------------
    def client(self) -> Client:
        """The twilio client, made on first use (its aiohttp session needs a running loop)."""
        if self._client is None:
            client = Client(
                self.wa.account_sid,
                self.wa.auth_token,
                http_client=AsyncTwilioHttpClient(timeout=30),
            )
            client.api.base_url = self.wa.api_url.rstrip("/")
            self._client = client
        return self._client

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.http_client.close()

    def _template_vars(self, about: dict[str, str], text: str) -> str:
        fields = {**about, "text": " · ".join(text.splitlines())}
        chosen = {k: fields[v][:TEMPLATE_VAR_CHARS] for k, v in self.wa.template.variables.items()}
        return json.dumps(chosen)

    async def _in_window(self, number: str) -> bool:
        async with self.store.read() as conn:
            heard = await delivery.last_heard(conn, PLATFORM, number)
        window = timedelta(seconds=self.wa.session_window_s)
        return heard is not None and utcnow() - heard < window

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except TwilioRestException as exc:
            raise translate(exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"Twilio is unreachable: {exc!r}") from exc

    async def _send(
        self,
        number: str,
        text: str,
        about: Incident | RootView | StormDigest | None,
        *,
        page: bool,
        key: str | None = None,
    ) -> str | None:
        """One message to `number`: free text inside the 24-hour window; outside it the
        template for a page, and nothing (None) for other news, which waits for the person
        to write (`status` tells it) rather than arriving as another identical template."""
        args: dict[str, str] = {"from_": self.wa.from_number, "to": PREFIX + number}
        if about is None or await self._in_window(number):
            args["body"] = text
        elif not page:
            log.info(
                "whatsapp.outside_window", incident=fields_of(about)["incident"], skipped="news"
            )
            return None
        elif self.wa.template.content_sid:
            args["content_sid"] = self.wa.template.content_sid
            args["content_variables"] = self._template_vars(fields_of(about), text)
        else:
            raise PermanentError(
                f"{number} is outside WhatsApp's 24-hour window and "
                "whatsapp.template.content_sid is not set"
            )
        if self.cfg.http.public_url:
            args["status_callback"] = self.cfg.http.public_url.rstrip("/") + STATUS_PATH
        incident_id = (
            about.incident_id
            if isinstance(about, RootView)
            else about.id
            if isinstance(about, Incident)
            else None
        )
        if key is not None:  # the intent first, so that `find_root` can look after a crash
            async with self.store.write() as conn:
                await delivery.intend(conn, PLATFORM, key, number, incident_id)
        sent = await self._call(self.client().messages.create_async(**args))
        async with self.store.write() as conn:
            await delivery.record_sent(conn, PLATFORM, str(sent.sid), number, incident_id, key)
        return str(sent.sid)

    async def _incident(self, thread: ThreadRef) -> Incident | None:
        """The incident whose root `thread` is (None for an answer outside incidents)."""
        if not thread.thread_id:
            return None
        async with self.store.read() as conn:
            row = (
                await conn.execute(
                    select(t.incidents)
                    .join(t.threads, t.threads.c.incident_id == t.incidents.c.id)
                    .where(
                        t.threads.c.platform == PLATFORM,
                        t.threads.c.channel == thread.channel,
                        t.threads.c.thread_id == thread.thread_id,
                    )
                )
            ).first()
        return Incident.from_row(row) if row else None

    async def post_root(self, channel: str, view: RootView, key: str | None = None) -> ThreadRef:
        text = whatsapp_text.root(view, self.capabilities)
        sid = await self._send(channel, text, view, page=True, key=key)
        assert sid is not None  # a page is sent, or refused with an error
        return ThreadRef(PLATFORM, channel, sid)

    async def find_root(self, channel: str, key: str) -> ThreadRef | None:
        """Twilio takes no idempotency key: a send recorded under `key` is the root; a send
        only attempted (the process died before Twilio's answer was recorded) is looked for
        among the messages Twilio lists to the number since the attempt, naming the incident."""
        async with self.store.read() as conn:
            found = await delivery.find_sent(conn, PLATFORM, key)
        if found is None:
            return None  # never tried
        sid, since, short_id = found
        if sid is not None:
            return ThreadRef(PLATFORM, channel, sid)
        listed = await self._call(
            self.client().messages.list_async(
                to=PREFIX + channel, from_=self.wa.from_number, limit=LISTED
            )
        )
        for m in listed:
            created = aware(m.date_created)
            # the API's dates are whole seconds
            if (
                created
                and created >= since - timedelta(seconds=1)
                and f"#{short_id} " in (m.body or "")
            ):
                return ThreadRef(PLATFORM, channel, str(m.sid))
        return None

    async def update_root(self, thread: ThreadRef, view: RootView) -> None:
        raise PermanentError("WhatsApp cannot edit a message")  # capabilities.can_edit is False

    async def reply(self, thread: ThreadRef, message: Reply) -> str:
        text = whatsapp_text.reply(message, self.capabilities)
        inc = await self._incident(thread)
        sid = await self._send(thread.channel, text, inc, page=message.kind in PAGES)
        return sid or ""

    async def post_digest(self, channel: str, digest: StormDigest, key: str) -> str:
        text = whatsapp_text.storm(digest, self.capabilities)
        return await self._send(channel, text, digest, page=True, key=key) or ""

    async def find_digest(self, channel: str, key: str) -> str | None:
        """The digest's message when its send was recorded (else it is sent again)."""
        async with self.store.read() as conn:
            found = await delivery.find_sent(conn, PLATFORM, key)
        return None if found is None else found[0]

    async def update_digest(self, channel: str, message_id: str, digest: StormDigest) -> None:
        raise PermanentError("WhatsApp cannot edit a message")  # capabilities.can_edit is False

    async def permalink(self, thread: ThreadRef) -> str | None:
        return None
