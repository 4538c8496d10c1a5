"""The built-in web console as a chat adapter: threads live in the store, updates go out as SSE."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from bot.chat.adapters.base import Reply, RootView, ThreadRef
from bot.chat.events import EventBus
from bot.chat.render import reply_to_json
from bot.incidents.models import iso, utcnow
from bot.store import Store, inserted_id
from bot.store import schema as t


class ConsoleAdapter:
    platform = "console"

    def __init__(self, store: Store, bus: EventBus) -> None:
        self.store, self.bus = store, bus

    async def post_root(self, channel: str, view: RootView) -> ThreadRef:
        self.bus.publish("incident", {"id": view.incident_id})
        return ThreadRef(self.platform, channel, view.incident_id)

    async def update_root(self, thread: ThreadRef, view: RootView) -> None:
        self.bus.publish("incident", {"id": view.incident_id})

    async def reply(self, thread: ThreadRef, message: Reply) -> str:
        msg_id = await append_message(
            self.store,
            self.bus,
            thread.thread_id,
            "opsbot",
            message.kind,
            message.text,
            reply_to_json(message),
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
