"""The conversation router: outbound chat items → adapters; inbound messages → handlers.

The router never branches on platform: adapters translate, the router decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app.config import Config
from bot.chat.adapters.base import ChatAdapter, InboundMessage, Reply, ThreadRef
from bot.chat.render import reply_from_json, root_view
from bot.errors import NotFound
from bot.incidents import lifecycle
from bot.incidents.models import Incident, utcnow
from bot.queue import outbox
from bot.queue.outbox import Item
from bot.store import Store
from bot.store import schema as t
from integrations.errors import PermanentError

log = structlog.get_logger(__name__)

Wake = Callable[[], None]
InboundHandler = Callable[[InboundMessage, Incident | None], Awaitable[None]]


def message_to_json(msg: InboundMessage) -> dict[str, Any]:
    data = dataclasses.asdict(msg)
    data["thread"] = dataclasses.asdict(msg.thread) if msg.thread else None
    return data


def message_from_json(data: dict[str, Any]) -> InboundMessage:
    thread = ThreadRef(**data["thread"]) if data.get("thread") else None
    return InboundMessage(**{**data, "thread": thread})


class Router:
    def __init__(self, cfg: Config, store: Store, adapters: dict[str, ChatAdapter]) -> None:
        self.cfg, self.store, self.adapters = cfg, store, adapters
        self.on_inbound: InboundHandler | None = None
        self.wake: Wake = lambda: None

    # ---- outbound -------------------------------------------------------------------------
    def _adapter(self, item: Item) -> tuple[ChatAdapter, str]:
        platform, channel = item.destination.split(":", 1)
        adapter = self.adapters.get(platform)
        if adapter is None:
            raise PermanentError(f"{platform} is not configured")
        return adapter, channel

    async def _thread(
        self, conn: AsyncConnection, incident_id: str, platform: str, channel: str
    ) -> ThreadRef | None:
        row = (
            await conn.execute(
                select(t.threads.c.thread_id).where(
                    t.threads.c.incident_id == incident_id,
                    t.threads.c.platform == platform,
                    t.threads.c.channel == channel,
                )
            )
        ).first()
        return ThreadRef(platform, channel, row.thread_id) if row else None

    async def deliver(self, item: Item) -> None:
        """Outbox handler for post_root, update_root and reply."""
        adapter, channel = self._adapter(item)
        incident_id = item.payload["incident_id"]
        async with self.store.read() as conn:
            inc = await lifecycle.get(conn, incident_id)
            thread = await self._thread(conn, incident_id, adapter.platform, channel)
        if item.kind == "post_root":
            if thread is not None:
                return  # already posted (a retry after the link was written)
            ref = await adapter.post_root(channel, root_view(self.cfg, inc))
            async with self.store.write() as conn:
                await conn.execute(
                    insert(t.threads).values(
                        incident_id=inc.id,
                        platform=ref.platform,
                        channel=ref.channel,
                        thread_id=ref.thread_id,
                        created_at=utcnow(),
                    )
                )
            return
        if thread is None:
            raise PermanentError(f"no {adapter.platform} thread for incident #{inc.short_id}")
        if item.kind == "update_root":
            await adapter.update_root(thread, root_view(self.cfg, inc))
        else:
            reply = reply_from_json(item.payload["reply"])
            reply.key = f"outbox-{item.id}"
            await adapter.reply(thread, reply)

    # ---- inbound --------------------------------------------------------------------------
    async def accept(self, msg: InboundMessage) -> bool:
        """Commit an operator's message durably (once per event id) before acknowledging it."""
        where = msg.thread.thread_id if msg.thread else msg.user_id
        try:
            async with self.store.write() as conn:
                await conn.execute(
                    insert(t.deliveries).values(
                        source=msg.platform,
                        idem_key=msg.event_id,
                        received_at=utcnow(),
                        body=msg.text[:10000],
                        outcome="queued",
                    )
                )
                await outbox.enqueue(
                    conn,
                    "inbound",
                    "router",
                    message_to_json(msg),
                    ordering_key=f"inbound:{msg.platform}:{msg.channel}:{where}",
                )
        except IntegrityError:
            log.info("inbound.duplicate", platform=msg.platform, event_id=msg.event_id)
            return False
        self.wake()
        return True

    async def incident_for(self, msg: InboundMessage) -> Incident | None:
        """The incident a message belongs to: named by the adapter, its thread, or a button."""
        async with self.store.read() as conn:
            if msg.incident_id is not None:
                try:
                    return await lifecycle.get(conn, msg.incident_id)
                except NotFound:
                    return None
            if msg.thread is not None:
                row = (
                    await conn.execute(
                        select(t.threads.c.incident_id).where(
                            t.threads.c.platform == msg.thread.platform,
                            t.threads.c.channel == msg.thread.channel,
                            t.threads.c.thread_id == msg.thread.thread_id,
                        )
                    )
                ).first()
                if row is not None:
                    return await lifecycle.get(conn, row.incident_id)
            if msg.action_value:
                try:
                    return await lifecycle.find(conn, msg.action_value)
                except NotFound:
                    return None
        return None

    async def handle(self, item: Item) -> None:
        """Outbox handler for `inbound`: find the incident, then let the dispatcher decide."""
        msg = message_from_json(item.payload)
        inc = await self.incident_for(msg)
        if self.on_inbound is None:
            await self.answer(msg, inc, Reply("I can't act on messages yet.", "error"))
            return
        await self.on_inbound(msg, inc)

    async def answer(self, msg: InboundMessage, inc: Incident | None, reply: Reply) -> None:
        """Reply where the message came from: its incident thread, or the channel itself."""
        async with self.store.write() as conn:
            if inc is not None:
                await lifecycle.enqueue_reply(
                    conn, self.cfg, inc, reply, only=(msg.platform, msg.channel)
                )
            else:
                from bot.chat.render import reply_to_json

                await outbox.enqueue(
                    conn,
                    "direct",
                    f"{msg.platform}:{msg.channel}",
                    {"reply": reply_to_json(reply), "thread": message_to_json(msg)["thread"]},
                    ordering_key=f"{msg.platform}:{msg.channel}:direct",
                )
        self.wake()

    async def deliver_direct(self, item: Item) -> None:
        """Outbox handler for `direct`: an answer outside any incident thread."""
        adapter, channel = self._adapter(item)
        th = item.payload.get("thread")
        ref = ThreadRef(**th) if th else ThreadRef(adapter.platform, channel, "")
        await adapter.reply(ref, reply_from_json(item.payload["reply"]))
