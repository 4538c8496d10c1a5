"""WhatsApp through Twilio: incidents out as short texts to people; their replies in.

A WhatsApp "thread" is a person's line: its channel is their number, its thread id the
incident. Inbound webhooks are verified with Twilio's `RequestValidator` over the public URL
(`http.public_url`, so it works behind a proxy) and committed once per MessageSid before the
answer; Twilio's status callbacks become `DeliveryStatus` reports. Outside WhatsApp's 24-hour
window (nothing heard from the number for `session_window_s`) the approved template is sent
instead of free text. Outbound calls make one attempt each; the outbox retries.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import parse_qsl

import aiohttp
import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.app.config import Config
from bot.app.server.inbound import check_content_type, read_body
from bot.chat.adapters.base import Capabilities, InboundMessage, Reply, RootView, ThreadRef
from bot.chat.renderers.whatsapp_text import MAX_CHARS, fit, reply_text, root_text
from bot.incidents import delivery
from bot.incidents.delivery import DeliveryStatus
from bot.incidents.models import Incident, Status, utcnow
from bot.store import Store
from bot.store import schema as t
from integrations.errors import IntegrationError, PermanentError, RateLimited, TransientError

log = structlog.get_logger(__name__)

Accept = Callable[[InboundMessage], Awaitable[bool]]
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


def translate(exc: TwilioRestException) -> IntegrationError:
    """429 → RateLimited; 5xx → TransientError; any other refusal (a bad number, a template
    WhatsApp rejects, wrong credentials) → PermanentError."""
    what = f"Twilio: HTTP {exc.status} error {exc.code}: {exc.msg}"
    if exc.status == 429:
        return RateLimited(what, RATE_LIMIT_BACKOFF_S)
    if exc.status >= 500:
        return TransientError(what)
    return PermanentError(what)


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
        has_threads=False,  # a person's line; the thread id is the incident it was about
        buttons_per_message=0,
        buttons_per_row=0,
        confirm_step=False,
        max_length=MAX_CHARS,  # Twilio refuses longer bodies
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
        now = utcnow()
        async with self.store.write() as conn:
            await delivery.heard_from(conn, PLATFORM, number, now)
            incident_id = await self._last_sent(conn, number)
        msg = InboundMessage(
            platform=PLATFORM,
            channel=number,
            user_id=number,
            text=form.get("Body", "").strip(),
            event_id=sid,
            user_name=form.get("ProfileName") or person.name,
            incident_id=incident_id,
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

    async def _last_sent(self, conn: AsyncConnection, number: str) -> str | None:
        """The incident this person was last sent: an open one first."""
        sm, inc = t.sent_messages, t.incidents
        row = (
            await conn.execute(
                select(sm.c.incident_id)
                .join(inc, inc.c.id == sm.c.incident_id)
                .where(sm.c.platform == PLATFORM, sm.c.recipient == number)
                .order_by((inc.c.status == Status.RESOLVED.value).asc(), sm.c.sent_at.desc())
                .limit(1)
            )
        ).first()
        return row.incident_id if row else None

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

    def _template_vars(self, inc: Incident | RootView, text: str) -> str:
        fields = {
            "incident": f"#{inc.short_id}",
            "severity": inc.severity,
            "service": inc.service or "-",
            "title": inc.title,
            "text": " · ".join(text.splitlines()),
        }
        chosen = {k: fields[v][:TEMPLATE_VAR_CHARS] for k, v in self.wa.template.variables.items()}
        return json.dumps(chosen)

    async def _send(
        self,
        number: str,
        text: str,
        about: Incident | RootView | None,
        *,
        page: bool = True,
    ) -> str:
        """One message to `number`: free text inside the 24-hour window, else the template for
        a page (the root, a state change, an escalation); other news waits for the person to
        write (`status` tells it), rather than arriving as a second identical template."""
        async with self.store.read() as conn:
            heard = await delivery.last_heard(conn, PLATFORM, number)
        in_window = heard is not None and utcnow() - heard < timedelta(
            seconds=self.wa.session_window_s
        )
        args: dict[str, str] = {"from_": self.wa.from_number, "to": PREFIX + number}
        if in_window or about is None:
            args["body"] = fit(text)
        elif not page:
            log.info("whatsapp.outside_window", to_incident=about.short_id, skipped="reply")
            return ""
        elif self.wa.template.content_sid:
            args["content_sid"] = self.wa.template.content_sid
            args["content_variables"] = self._template_vars(about, text)
        else:
            raise PermanentError(
                f"{number} is outside WhatsApp's 24-hour window and "
                "whatsapp.template.content_sid is not set"
            )
        if self.cfg.http.public_url:
            args["status_callback"] = self.cfg.http.public_url.rstrip("/") + STATUS_PATH
        try:
            sent = await self.client().messages.create_async(**args)
        except TwilioRestException as exc:
            raise translate(exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"Twilio is unreachable: {exc!r}") from exc
        incident_id = (
            about.incident_id if isinstance(about, RootView) else about.id if about else None
        )
        async with self.store.write() as conn:
            await delivery.record_sent(conn, PLATFORM, str(sent.sid), number, incident_id)
        return str(sent.sid)

    async def _incident(self, thread: ThreadRef) -> Incident | None:
        if not thread.thread_id:
            return None
        async with self.store.read() as conn:
            row = (
                await conn.execute(select(t.incidents).where(t.incidents.c.id == thread.thread_id))
            ).first()
        return Incident.from_row(row) if row else None

    async def post_root(self, channel: str, view: RootView, key: str | None = None) -> ThreadRef:
        await self._send(channel, root_text(view), view)
        return ThreadRef(PLATFORM, channel, view.incident_id)

    async def find_root(self, channel: str, key: str) -> ThreadRef | None:
        """Twilio takes no idempotency key and the send is recorded after its answer: a root
        whose answer was lost is sent again."""
        return None

    async def update_root(self, thread: ThreadRef, view: RootView) -> None:
        """WhatsApp cannot edit, and each message costs: a repeat sends nothing, and every
        state change (ack, resolve, re-open) already reaches the person as its one-line reply."""

    async def reply(self, thread: ThreadRef, message: Reply) -> str:
        inc = await self._incident(thread)
        text = reply_text(message, inc.short_id if inc else None)
        return await self._send(thread.channel, text, inc, page=message.kind == "page")

    async def permalink(self, thread: ThreadRef) -> str | None:
        return None
