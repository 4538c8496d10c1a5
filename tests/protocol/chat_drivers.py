"""Drivers for the shared chat behaviour suite: one per platform, each through its fake.

A driver knows how a person sends a message on its platform and what the platform received;
`test_chat_behaviour.py` runs every case against every driver in `DRIVERS`. A new platform
adds a driver class here (and its fake server in tests/fakes/) and nothing else.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from bot.chat.adapters.base import Capabilities, ChatAdapter, InboundMessage
from bot.store import schema as t
from tests.fakes.bot_server import RunningBot
from tests.fakes.direct_line import SETTINGS as LINE_SETTINGS
from tests.fakes.direct_line import DirectLine
from tests.fakes.discord_api import (
    BOT_USER_ID,
    INCIDENTS,
    DiscordMessage,
    FakeDiscord,
    discord_settings,
)
from tests.fakes.slack_api import (
    FakeSlack,
    SlackMessage,
    SlackSender,
    event_callback,
    message_event,
    slack_settings,
    slash_command,
)
from tests.fakes.twilio_api import FakeTwilio, TwilioSender, whatsapp_settings

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    roles: tuple[str, ...]
    slack: str
    phone: str
    discord: str


RAVI = Person("ravi", ("responder", "approver"), "U024BE7LH", "+919800000001", "80351110224678912")
ASHA = Person("asha", ("responder",), "U0ASHA", "+919800000002", "80351110224678914")
PEOPLE = [
    {
        "name": p.name,
        "slack": p.slack,
        "whatsapp": p.phone,
        "discord": p.discord,
        "roles": list(p.roles),
    }
    for p in (RAVI, ASHA)
]
_MASS_PINGS = ("@everyone", "@here", "@channel")
_PAGE = re.compile(r"\S+ [A-Z]+ #\d+ ")  # the first line of a WhatsApp page


class Fake(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@asynccontextmanager
async def serving(fake: Fake) -> AsyncIterator[None]:
    """A platform's fake server, for as long as the bot runs."""
    await fake.start()
    try:
        yield
    finally:
        await fake.stop()


class Driver(Protocol):
    name: str

    def settings(self) -> Json:
        """Config overrides: the platform's section and a route to it."""
        ...

    def running(self) -> AbstractAsyncContextManager[None]:
        """Whatever the platform's fake needs while the bot runs."""
        ...

    def adapters(self) -> list[ChatAdapter]:
        """Test adapters for the bot, where the platform has none of its own."""
        ...

    async def ready(self, bot: RunningBot) -> None:
        """Whatever people do on the platform before the first incident."""
        ...

    def capabilities(self, bot: RunningBot) -> Capabilities: ...

    def name_of(self, who: Person) -> str:
        """How the bot calls `who` there."""
        ...

    async def say(self, bot: RunningBot, incident_id: str, who: Person, text: str) -> None:
        """`who` writes `text` in the incident's conversation."""
        ...

    async def said(self, bot: RunningBot, incident_id: str) -> list[str]:
        """What the platform shows in the incident's conversation after its root, in order."""
        ...

    async def roots(self, bot: RunningBot) -> list[str]:
        """Every root message the platform received (as first posted)."""
        ...

    async def root_now(self, bot: RunningBot, incident_id: str) -> str:
        """The incident's root as the platform shows it now."""
        ...

    async def direct(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        """`who` writes outside any incident's conversation (a DM); what came back there.
        None: the platform has no such place."""
        ...

    async def command(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        """A slash command's answer where it was typed; None: no slash commands."""
        ...

    def pings(self, text: str) -> bool:
        """Whether `text`, as the platform received it, would notify people at large."""
        ...


def _mrkdwn(node: Any) -> list[str]:
    if isinstance(node, list):
        return [text for item in node for text in _mrkdwn(item)]
    if not isinstance(node, dict):
        return []
    if node.get("type") == "mrkdwn":
        return [node["text"]]
    return [text for value in node.values() for text in _mrkdwn(value)]


def _is_root(msg: SlackMessage) -> bool:
    return msg.thread_ts is None and bool(msg.metadata)


class SlackDriver:
    """Slack through the real slack_sdk/slack_bolt and tests/fakes/slack_api.py."""

    name = "slack"
    channel = "C0INCIDENTS"

    def __init__(self) -> None:
        self.fake = FakeSlack()
        self._ts = itertools.count(1)

    def settings(self) -> Json:
        return {
            "slack": slack_settings(self.fake),
            "routes": [{"match": {}, "slack": [self.channel]}],
        }

    def running(self) -> AbstractAsyncContextManager[None]:
        return serving(self.fake)

    def adapters(self) -> list[ChatAdapter]:
        return []

    async def ready(self, bot: RunningBot) -> None:
        return None

    def capabilities(self, bot: RunningBot) -> Capabilities:
        return bot.runtime.adapters["slack"].capabilities

    def name_of(self, who: Person) -> str:
        return who.name

    async def _root_ts(self, bot: RunningBot, incident_id: str) -> str:
        detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
        (ts,) = [th["thread_id"] for th in detail["threads"] if th["platform"] == "slack"]
        return ts

    def _next_ts(self) -> str:
        return f"1800000000.{next(self._ts):06d}"

    async def _send(self, bot: RunningBot, event: Json) -> None:
        resp = await SlackSender(bot.client).event(event_callback(event))
        assert resp.status_code == 200, resp.text

    async def say(self, bot: RunningBot, incident_id: str, who: Person, text: str) -> None:
        root = await self._root_ts(bot, incident_id)
        event = message_event(
            text, channel=self.channel, ts=self._next_ts(), user=who.slack, thread_ts=root
        )
        await self._send(bot, event)

    async def said(self, bot: RunningBot, incident_id: str) -> list[str]:
        root = await self._root_ts(bot, incident_id)
        return [m.text for m in self.fake.thread(self.channel, root)]

    async def roots(self, bot: RunningBot) -> list[str]:
        return [m.text for m in self.fake.messages.values() if _is_root(m)]

    async def root_now(self, bot: RunningBot, incident_id: str) -> str:
        """Its text and the mrkdwn of its blocks (plain_text, such as the header, is shown as
        written: Slack reads no mentions in it)."""
        msg = self.fake.messages[(self.channel, await self._root_ts(bot, incident_id))]
        return "\n".join([msg.text, *_mrkdwn(msg.blocks or [])])

    async def direct(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        dm = f"D0{who.name.upper()}"
        await self._send(
            bot,
            message_event(text, channel=dm, ts=self._next_ts(), user=who.slack, channel_type="im"),
        )
        await drain(bot)
        return [m.text for m in self.fake.messages.values() if m.channel == dm]

    async def command(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        form = slash_command(text, channel=self.channel, user=who.slack)
        resp = await SlackSender(bot.client).command(form)
        assert resp.status_code == 200, resp.text
        await drain(bot)
        return [
            m.text
            for m in self.fake.messages.values()
            if m.channel == self.channel and m.thread_ts is None and not _is_root(m)
        ]

    def pings(self, text: str) -> bool:
        return any(p in text for p in ("<!channel", "<!here", "<!everyone", "<!subteam^"))


class ConsoleDriver:
    """The web console through its real HTTP API. An incident's console thread is the
    incident itself, so its root is the incident, shown from the API."""

    name = "console"

    def settings(self) -> Json:
        return {}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        yield

    def adapters(self) -> list[ChatAdapter]:
        return []

    async def ready(self, bot: RunningBot) -> None:
        return None

    def capabilities(self, bot: RunningBot) -> Capabilities:
        return bot.runtime.adapters["console"].capabilities

    def name_of(self, who: Person) -> str:
        return "console"  # one user: the local admin on a loopback-bound bot

    async def _detail(self, bot: RunningBot, incident_id: str) -> Json:
        resp = await bot.client.get(f"/api/incidents/{incident_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def say(self, bot: RunningBot, incident_id: str, who: Person, text: str) -> None:
        resp = await bot.client.post(f"/api/incidents/{incident_id}/messages", json={"text": text})
        assert resp.status_code == 202, resp.text

    async def said(self, bot: RunningBot, incident_id: str) -> list[str]:
        detail = await self._detail(bot, incident_id)
        return [m["text"] for m in detail["messages"] if m["author"] == "opsbot"]

    async def roots(self, bot: RunningBot) -> list[str]:
        incidents = (await bot.client.get("/api/incidents")).json()["incidents"]
        out = []
        for inc in incidents:
            threads = (await self._detail(bot, inc["id"]))["threads"]
            out += [inc["title"] for th in threads if th["platform"] == "console"]
        return out

    async def root_now(self, bot: RunningBot, incident_id: str) -> str:
        d = await self._detail(bot, incident_id)
        by = d["acknowledged_by"] or ""
        return f"{d['status']} {by} {d['alert_count']} alerts {d['title']}"

    async def direct(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        return None  # every console conversation is an incident's thread

    async def command(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        return None

    def pings(self, text: str) -> bool:
        return False  # the console shows text as text: nothing in it notifies anyone


class LineDriver:
    """A platform of direct lines (tests/fakes/direct_line.py): no threads, no edits, no
    buttons; a person's messages go to the incident they name or were last sent."""

    name = "line"

    def __init__(self) -> None:
        self.adapter = DirectLine()

    def settings(self) -> Json:
        return {
            "whatsapp": LINE_SETTINGS,
            "routes": [{"match": {}, "whatsapp": [RAVI.name, ASHA.name], "console": False}],
        }

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        yield

    def adapters(self) -> list[ChatAdapter]:
        return [self.adapter]

    async def ready(self, bot: RunningBot) -> None:
        return None

    def capabilities(self, bot: RunningBot) -> Capabilities:
        return self.adapter.capabilities

    def name_of(self, who: Person) -> str:
        return who.name

    async def say(self, bot: RunningBot, incident_id: str, who: Person, text: str) -> None:
        await self.send(bot, who, text)

    async def send(self, bot: RunningBot, who: Person, text: str) -> None:
        """A message on `who`'s line (channel: their number, as routes resolve their name)."""
        accepted = await bot.runtime.router.accept(
            InboundMessage(
                platform=self.adapter.platform,
                channel=who.phone,
                user_id=who.phone,
                text=text,
                event_id=f"SM{uuid.uuid4().hex}",
            )
        )
        assert accepted

    async def _root_id(self, bot: RunningBot, incident_id: str) -> str:
        detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
        (root,) = [
            th["thread_id"]
            for th in detail["threads"]
            if (th["platform"], th["channel"]) == (self.adapter.platform, RAVI.phone)
        ]
        return root

    async def said(self, bot: RunningBot, incident_id: str) -> list[str]:
        root = await self._root_id(bot, incident_id)
        line = self.adapter.lines[RAVI.phone]
        return [s.text for s in line[[s.id for s in line].index(root) + 1 :]]

    async def roots(self, bot: RunningBot) -> list[str]:
        """The roots on Ravi's line (Asha has a line of her own with the same roots)."""
        return [r.text for r in self.adapter.roots if r in self.adapter.lines[RAVI.phone]]

    async def root_now(self, bot: RunningBot, incident_id: str) -> str:
        root = await self._root_id(bot, incident_id)
        return next(r.text for r in self.adapter.roots if r.id == root)

    async def direct(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        before = len(self.adapter.texts(who.phone))
        await self.send(bot, who, text)
        await drain(bot)
        return self.adapter.texts(who.phone)[before:]

    async def command(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        return None

    def pings(self, text: str) -> bool:
        return any(p in text for p in _MASS_PINGS) or "<@" in text or "<!" in text


class WhatsAppDriver:
    """WhatsApp through the real `twilio` client and tests/fakes/twilio_api.py; people write
    through signed webhooks. Each person writes first, so that the bot may answer in free text
    (WhatsApp's 24-hour window)."""

    name = "whatsapp"

    def __init__(self) -> None:
        self.fake = FakeTwilio()

    def settings(self) -> Json:
        return {
            "whatsapp": whatsapp_settings(self.fake),
            "routes": [{"match": {}, "whatsapp": [RAVI.name, ASHA.name], "console": False}],
        }

    def running(self) -> AbstractAsyncContextManager[None]:
        return serving(self.fake)

    def adapters(self) -> list[ChatAdapter]:
        return []

    async def ready(self, bot: RunningBot) -> None:
        for who in (RAVI, ASHA):
            await self.send(bot, who, "hello")
        await drain(bot)

    def capabilities(self, bot: RunningBot) -> Capabilities:
        return bot.runtime.adapters["whatsapp"].capabilities

    def name_of(self, who: Person) -> str:
        return who.name

    async def send(self, bot: RunningBot, who: Person, text: str) -> None:
        public_url = bot.runtime.cfg.http.public_url or bot.url
        resp = await TwilioSender(bot.client, public_url).message(who.phone, text)
        assert resp.status_code == 200, resp.text

    async def say(self, bot: RunningBot, incident_id: str, who: Person, text: str) -> None:
        await self.send(bot, who, text)

    async def _roots(self, bot: RunningBot) -> dict[str, str]:
        """Ravi's roots: message sid → incident."""
        detail = (await bot.client.get("/api/incidents")).json()["incidents"]
        out = {}
        for inc in detail:
            threads = (await bot.client.get(f"/api/incidents/{inc['id']}")).json()["threads"]
            out |= {
                th["thread_id"]: inc["id"]
                for th in threads
                if (th["platform"], th["channel"]) == ("whatsapp", RAVI.phone)
            }
        return out

    async def said(self, bot: RunningBot, incident_id: str) -> list[str]:
        line = self.fake.sent_to(RAVI.phone)
        root = next(sid for sid, inc in (await self._roots(bot)).items() if inc == incident_id)
        sids = [m.sid for m in line]
        return [m.body or "" for m in line[sids.index(root) + 1 :]]

    async def roots(self, bot: RunningBot) -> list[str]:
        """Every page on Ravi's phone, recorded or not: "🔴 CRITICAL #1 checkout" first."""
        bodies = [m.body or "" for m in self.fake.sent_to(RAVI.phone)]
        return [b for b in bodies if _PAGE.match(b)]

    async def root_now(self, bot: RunningBot, incident_id: str) -> str:
        root = next(sid for sid, inc in (await self._roots(bot)).items() if inc == incident_id)
        return next(m.body or "" for m in self.fake.sent_to(RAVI.phone) if m.sid == root)

    async def direct(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        before = len(self.fake.sent_to(who.phone))
        await self.send(bot, who, text)
        await drain(bot)
        return [m.body or "" for m in self.fake.sent_to(who.phone)[before:]]

    async def command(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        return None

    def pings(self, text: str) -> bool:
        return any(p in text for p in _MASS_PINGS) or "<@" in text or "<!" in text


def _shown(msg: DiscordMessage) -> str:
    """A Discord message as a person reads it: its text, then its embeds' text."""
    parts = [msg.content] if msg.content else []
    for embed in msg.embeds:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(p for p in parts if p)


_DISCORD_PING = re.compile(r"(?<!\u200b)@(everyone|here)\b|<@[!&]?\d")


class DiscordDriver:
    """Discord through the real discord.py (gateway and REST) and tests/fakes/discord_api.py."""

    name = "discord"
    channel = INCIDENTS

    def __init__(self) -> None:
        self.fake = FakeDiscord()
        for who in (RAVI, ASHA):
            self.fake.add_user(who.discord, who.name)

    def settings(self) -> Json:
        return {
            "discord": discord_settings(self.fake),
            "routes": [{"match": {}, "discord": [self.channel]}],
        }

    def running(self) -> AbstractAsyncContextManager[None]:
        return serving(self.fake)

    def adapters(self) -> list[ChatAdapter]:
        return []

    async def ready(self, bot: RunningBot) -> None:
        await self.fake.wait_ready()  # the bot holds the gateway

    def capabilities(self, bot: RunningBot) -> Capabilities:
        return bot.runtime.adapters["discord"].capabilities

    def name_of(self, who: Person) -> str:
        return who.name

    async def _root_id(self, bot: RunningBot, incident_id: str) -> str:
        detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
        (root,) = [th["thread_id"] for th in detail["threads"] if th["platform"] == "discord"]
        return root

    async def _committed(self, bot: RunningBot, event_id: str) -> None:
        """Until the bot has committed what the gateway delivered (it arrives on its own)."""
        from sqlalchemy import select

        async def committed() -> bool:
            async with bot.runtime.store.read() as conn:
                found = await conn.scalar(
                    select(t.deliveries.c.id).where(
                        t.deliveries.c.source == "discord", t.deliveries.c.idem_key == event_id
                    )
                )
            return found is not None

        await bot.wait_for(committed, 10, f"the bot to commit {event_id}")

    async def say(self, bot: RunningBot, incident_id: str, who: Person, text: str) -> None:
        await self.fake.wait_ready()
        msg = await self.fake.say(await self._root_id(bot, incident_id), text, user=who.discord)
        await self._committed(bot, f"message:{msg.id}")

    async def said(self, bot: RunningBot, incident_id: str) -> list[str]:
        root = await self._root_id(bot, incident_id)
        return [_shown(m) for m in self.fake.in_channel(root) if m.author["id"] == BOT_USER_ID]

    async def roots(self, bot: RunningBot) -> list[str]:
        return [_shown(m) for m in self.fake.roots(self.channel)]

    async def root_now(self, bot: RunningBot, incident_id: str) -> str:
        root = await self._root_id(bot, incident_id)
        return _shown(self.fake.messages[root])

    async def direct(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        return None  # opsbot is in a guild's channels and threads; it reads no DMs

    async def command(self, bot: RunningBot, who: Person, text: str) -> list[str] | None:
        await self.fake.wait_ready()
        asked = await self.fake.slash(
            "incident", {"description": text}, channel_id=self.channel, user=who.discord
        )
        await self.fake.wait_answered(asked)
        await self._committed(bot, f"interaction:{asked.id}")
        await drain(bot)
        return [_shown(m) for m in asked.followups]

    def pings(self, text: str) -> bool:
        return _DISCORD_PING.search(text) is not None


DRIVERS: dict[str, type[Driver]] = {
    "slack": SlackDriver,
    "discord": DiscordDriver,
    "console": ConsoleDriver,
    "line": LineDriver,
    "whatsapp": WhatsAppDriver,
}


async def drain(bot: RunningBot, timeout_s: float = 20.0) -> None:
    """Deliver until nothing is pending (retries included: the suite's backoff is short)."""
    from sqlalchemy import func, select

    from bot.store import schema as t

    async def idle() -> bool:
        async with bot.runtime.store.read() as conn:
            pending = await conn.scalar(
                select(func.count()).select_from(t.outbox).where(t.outbox.c.status == "pending")
            )
        return pending == 0

    await bot.wait_for(idle, timeout_s, "the outbox to drain")
