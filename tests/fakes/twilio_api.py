"""A fake Twilio on 127.0.0.1: the Messages resource opsbot calls, and Twilio's webhooks.

The real `twilio` client reaches it through `whatsapp.api_url`. It answers like Twilio (201
with the message resource, or `{"code", "message", "more_info", "status"}` errors such as 429
and 5xx on demand), checks HTTP basic auth and WhatsApp addressing, and records every call.
`TwilioSender` posts inbound messages and status callbacks signed exactly as Twilio signs
them (`X-Twilio-Signature` over the public URL and the sorted form fields).
"""

from __future__ import annotations

import base64
import itertools
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

Json = dict[str, Any]

ACCOUNT_SID = "AC" + "f" * 32
AUTH_TOKEN = "fake-twilio-auth-token"
SANDBOX_NUMBER = "whatsapp:+14155238886"
MAX_BODY = 1600


@dataclass(frozen=True, slots=True)
class TwilioMessage:
    """One accepted `Messages.json` create: the form fields Twilio was sent, and its sid."""

    sid: str
    to: str
    from_: str
    body: str | None
    content_sid: str | None
    content_variables: dict[str, str] | None
    status_callback: str | None
    created: datetime

    def resource(self) -> Json:
        """The Message resource as Twilio's API shows it (a template's variables, filled)."""
        stamp = self.created.strftime("%a, %d %b %Y %H:%M:%S +0000")
        shown = self.body or " ".join((self.content_variables or {}).values())
        return {
            "sid": self.sid,
            "account_sid": ACCOUNT_SID,
            "api_version": "2010-04-01",
            "body": shown,
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "to": self.to,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "status": "queued",
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{self.sid}.json",
        }


@dataclass(slots=True)
class _Failure:
    remaining: int
    status: int
    after_sending: bool = False  # the message goes out, but the answer is an error

    def response(self) -> web.Response:
        code = 20429 if self.status == 429 else 20500
        text = "Too Many Requests" if self.status == 429 else "Internal Server Error"
        return _twilio_error(self.status, code, text)


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status)


class FakeTwilio:
    """State and handlers of one fake Twilio account; `api_url` is its base URL."""

    def __init__(self) -> None:
        self.api_url = ""
        self.messages: list[TwilioMessage] = []
        self.requests = 0  # every request, refused ones included
        self._failures: list[_Failure] = []
        self._sids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    def fail_next(self, n: int = 1, *, status: int = 429, after_sending: bool = False) -> None:
        """Answer the next `n` creates with `status` (429 Too Many Requests, or a 5xx); with
        `after_sending`, only once the message was sent (a gateway that lost the answer)."""
        self._failures.append(_Failure(n, status, after_sending))

    def sent_to(self, number: str) -> list[TwilioMessage]:
        """Messages sent to a phone number (`+91...`), oldest first."""
        return [m for m in self.messages if m.to == f"whatsapp:{number}"]

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.api_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages.json", self._list)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user == ACCOUNT_SID == request.match_info["sid"] and password == AUTH_TOKEN

    async def _create(self, request: web.Request) -> web.Response:
        self.requests += 1
        failure = next((f for f in self._failures if f.remaining), None)
        if failure is not None:
            failure.remaining -= 1
            if not failure.after_sending:
                return failure.response()
        if not self._authorized(request):
            return _twilio_error(401, 20003, "Authenticate")
        form = await request.post()
        to, from_ = str(form.get("To", "")), str(form.get("From", ""))
        body = form.get("Body")
        content_sid = form.get("ContentSid")
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if to.startswith("whatsapp:") != from_.startswith("whatsapp:"):
            return _twilio_error(
                400, 63007, "Twilio could not find a Channel with the From address"
            )
        if not body and not content_sid:
            return _twilio_error(400, 21602, "Message body is required.")
        if body and len(str(body)) > MAX_BODY:
            return _twilio_error(400, 21617, "The concatenated message body exceeds 1600 chars.")
        raw_vars = form.get("ContentVariables")
        sid = f"SM{next(self._sids):032x}"
        msg = TwilioMessage(
            sid=sid,
            to=to,
            from_=from_,
            body=str(body) if body else None,
            content_sid=str(content_sid) if content_sid else None,
            content_variables=json.loads(str(raw_vars)) if raw_vars else None,
            status_callback=str(form["StatusCallback"]) if form.get("StatusCallback") else None,
            created=datetime.now(UTC),
        )
        self.messages.append(msg)
        if failure is not None:
            return failure.response()
        return web.json_response(msg.resource(), status=201)

    async def _list(self, request: web.Request) -> web.Response:
        """Messages, newest first, filtered by `To` and `From` (one page: the fake is small)."""
        self.requests += 1
        if not self._authorized(request):
            return _twilio_error(401, 20003, "Authenticate")
        to, from_ = request.query.get("To"), request.query.get("From")
        found = [
            m.resource()
            for m in reversed(self.messages)
            if to in (None, m.to) and from_ in (None, m.from_)
        ]
        uri = request.path_qs
        return web.json_response(
            {
                "messages": found,
                "end": max(len(found) - 1, 0),
                "first_page_uri": uri,
                "next_page_uri": None,
                "page": 0,
                "page_size": 50,
                "previous_page_uri": None,
                "start": 0,
                "uri": uri,
            }
        )


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """`X-Twilio-Signature`: base64 HMAC-SHA1 of the URL followed by the sorted fields."""
    return RequestValidator(token).compute_signature(url, params)


class TwilioSender:
    """Posts to the bot's `/twilio/*` as Twilio does: form-encoded and signed over
    `public_url` (the address Twilio was given), whatever address the request reaches."""

    def __init__(self, client: httpx.AsyncClient, public_url: str) -> None:
        self.client, self.public_url = client, public_url.rstrip("/")

    async def post(
        self, path: str, form: dict[str, str], *, signature: str | None = None
    ) -> httpx.Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        sig = sign(self.public_url + path, form) if signature is None else signature
        if sig:
            headers["X-Twilio-Signature"] = sig
        return await self.client.post(path, data=form, headers=headers)

    async def message(
        self,
        number: str,
        text: str,
        *,
        sid: str | None = None,
        profile: str = "Ravi",
        signature: str | None = None,
    ) -> httpx.Response:
        """A WhatsApp message from `number` (`+91...`) to the bot's sender."""
        sid = sid or f"SM{uuid.uuid4().hex}"
        form = {
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ProfileName": profile,
            "MessageType": "text",
            "SmsSid": sid,
            "WaId": number.lstrip("+"),
            "SmsStatus": "received",
            "Body": text,
            "To": SANDBOX_NUMBER,
            "NumSegments": "1",
            "ReferralNumMedia": "0",
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": f"whatsapp:{number}",
            "ApiVersion": "2010-04-01",
        }
        return await self.post("/twilio/whatsapp", form, signature=signature)

    async def status(
        self, message: TwilioMessage, status: str, *, error_code: str | None = None
    ) -> httpx.Response:
        """The status callback Twilio posts for a message the bot sent."""
        form = {
            "ChannelPrefix": "whatsapp",
            "ApiVersion": "2010-04-01",
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "ChannelInstallSid": "XE" + "0" * 32,
            "To": message.to,
            "From": message.from_,
            "MessageSid": message.sid,
            "AccountSid": ACCOUNT_SID,
            "ChannelToAddress": message.to.removeprefix("whatsapp:"),
        }
        if error_code:
            form["ErrorCode"] = error_code
            form["EventType"] = "UNDELIVERED" if status == "undelivered" else "FAILED"
        elif status in ("delivered", "read"):
            form["EventType"] = status.upper()
        return await self.post("/twilio/status", form)


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    """A running fake Twilio account with its REST API at `.api_url`."""
    server = FakeTwilio()
    await server.start()
    yield server
    await server.stop()


def whatsapp_settings(fake: FakeTwilio, **overrides: Any) -> Json:
    """The `whatsapp:` config section pointing the bot at the fake."""
    return {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": SANDBOX_NUMBER,
        "api_url": fake.api_url,
        **overrides,
    }
