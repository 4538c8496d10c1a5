"""The built-in web console as a chat adapter: threads live in the store, updates go out as SSE."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select

from bot.chat.adapters.base import (
    Capabilities,
    InboundMessage,
    Reply,
    RootView,
    StormDigest,
    ThreadRef,
)
from bot.chat.events import EventBus
from bot.chat.renderers import console_json
from bot.incidents.models import iso, utcnow
from bot.store import Store, inserted_id
from bot.store import schema as t

PLATFORM = CHANNEL = "console"


def console_message(
    user: str, text: str, incident_id: str, action: str | None, value: str | None
) -> InboundMessage:
    """What a console user typed or clicked in an incident's thread (the thread is the incident)."""
    return InboundMessage(
        platform=PLATFORM,
        channel=CHANNEL,
        user_id=user,
        user_name=user,
        text=text,
        event_id=f"console-{uuid.uuid4().hex}",
        thread=ThreadRef(PLATFORM, CHANNEL, incident_id),
        incident_id=incident_id,
        action=action,
        action_value=value,
    )


class ConsoleAdapter:
    """An incident's console thread is the incident itself (its id is the thread id), so a
    root posted twice is still one thread; replies are stored once per delivery key."""

    platform = PLATFORM
    capabilities = Capabilities(
        can_edit=True,
        has_threads=True,
        buttons_per_message=25,
        buttons_per_row=25,
        confirm_step=False,
        max_length=20000,
        markup="console_json",
        mention="@{user_id}",
    )

    def __init__(self, store: Store, bus: EventBus) -> None:
        self.store, self.bus = store, bus

    async def post_root(self, channel: str, view: RootView, key: str | None = None) -> ThreadRef:
        self.bus.publish("incident", console_json.root(view, self.capabilities))
        return ThreadRef(self.platform, channel, view.incident_id)

    async def find_root(self, channel: str, key: str) -> ThreadRef | None:
        return None  # posting again publishes the same thread

    async def update_root(self, thread: ThreadRef, view: RootView) -> None:
        self.bus.publish("incident", console_json.root(view, self.capabilities))

    async def post_digest(self, channel: str, digest: StormDigest, key: str) -> str:
        self.bus.publish("storm", {"key": key, **console_json.storm(digest, self.capabilities)})
        return key

    async def find_digest(self, channel: str, key: str) -> str | None:
        return None  # posting again publishes the same digest

    async def update_digest(self, channel: str, message_id: str, digest: StormDigest) -> None:
        await self.post_digest(channel, digest, message_id)

    async def reply(self, thread: ThreadRef, message: Reply) -> str:
        data = console_json.reply(message, self.capabilities)
        msg_id = await append_message(
            self.store,
            self.bus,
            thread.thread_id,
            "opsbot",
            message.kind,
            data["text"],
            data,
            key=message.key,
        )
        return str(msg_id)

    async def permalink(self, thread: ThreadRef) -> str | None:
        return None


async def append_message(
    store: Store,
    bus: EventBus,
    incident_id: str,
    author: str,
    kind: str,
    text: str,
    payload: dict[str, Any],
    *,
    key: str | None = None,
) -> int:
    """Write one message of an incident's console thread and push it to open consoles.

    With a `key`, a second write (the outbox retrying after a crash) returns the first one.
    """
    now = utcnow()
    async with store.write() as conn:
        if key is not None:
            seen = await conn.scalar(
                select(t.messages.c.id).where(t.messages.c.delivery_key == key)
            )
            if seen is not None:
                return int(seen)
        res = await conn.execute(
            insert(t.messages).values(
                delivery_key=key,
                incident_id=incident_id,
                at=now,
                author=author,
                kind=kind,
                text=text,
                payload=payload,
            )
        )
        msg_id = inserted_id(res)
    message = {
        "id": msg_id,
        "at": iso(now),
        "author": author,
        **payload,
        "kind": kind,
        "text": text,
    }
    bus.publish("message", {"incident_id": incident_id, "message": message})
    return msg_id
