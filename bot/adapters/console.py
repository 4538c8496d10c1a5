"""The built-in web console as a chat adapter: threads live in the store, updates go out as SSE."""

from __future__ import annotations

from sqlalchemy import insert, select

from bot.adapters.base import Reply, RootView, ThreadRef
from bot.events import EventBus
from bot.models import utcnow
from bot.render import reply_to_json
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
        payload = reply_to_json(message)
        now = utcnow()
        async with self.store.write() as conn:
            if message.key is not None:
                seen = await conn.scalar(
                    select(t.messages.c.id).where(t.messages.c.delivery_key == message.key)
                )
                if seen is not None:
                    return str(seen)  # delivered before a crash: the outbox is retrying it
            res = await conn.execute(
                insert(t.messages).values(
                    delivery_key=message.key,
                    incident_id=thread.thread_id,
                    at=now,
                    author="opsbot",
                    kind=message.kind,
                    text=message.text,
                    payload=payload,
                )
            )
            msg_id = inserted_id(res)
        self.bus.publish(
            "message",
            {
                "incident_id": thread.thread_id,
                "message": {"id": msg_id, "at": now.isoformat(), "author": "opsbot", **payload},
            },
        )
        return str(msg_id)

    async def permalink(self, thread: ThreadRef) -> str | None:
        return None
