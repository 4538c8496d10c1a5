"""The conversation router: outbound chat items → adapters; inbound messages → handlers.

The router never branches on platform: it asks an adapter's `capabilities` (can it edit, has
it threads) and leaves the rendering to the adapter's dialect.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from agent.types import Diagnosis
from bot.app.config import Config
from bot.chat.adapters.base import ChatAdapter, InboundMessage, ThreadRef
from bot.chat.messages import Reply, reply_from_json, reply_to_json
from bot.chat.render import after_resolution, diagnosis_text, root_view
from bot.chat.storm import OPEN, STORM, StormDesk
from bot.errors import NotFound
from bot.incidents import lifecycle
from bot.incidents.models import Incident, Status, utcnow
from bot.queue import outbox
from bot.queue.outbox import Item, Priority
from bot.store import Store
from bot.store import schema as t
from integrations.errors import PermanentError, TransientError

log = structlog.get_logger(__name__)

Wake = Callable[[], None]
InboundHandler = Callable[[InboundMessage, Incident | None, int | None], Awaitable[None]]
POSTING, POSTED = "posting", "posted"


def message_to_json(msg: InboundMessage) -> dict[str, Any]:
    data = dataclasses.asdict(msg)
    data["thread"] = dataclasses.asdict(msg.thread) if msg.thread else None
    return data


def message_from_json(data: dict[str, Any]) -> InboundMessage:
    thread = ThreadRef(**data["thread"]) if data.get("thread") else None
    return InboundMessage(**{**data, "thread": thread})


def root_key(incident_id: str, platform: str, channel: str) -> str:
    """The idempotency key of an incident's root in one place: the same on every attempt."""
    digest = hashlib.sha256(f"{incident_id}\0{platform}\0{channel}".encode()).hexdigest()
    return f"root-{digest[:40]}"


def _prompted_action(reply: Reply) -> int | None:
    """The action an approval prompt asks about (its Approve button's id)."""
    for b in reply.buttons:
        name, _, arg = b.action_id.partition(":")
        if name == "approve" and arg.isdigit():
            return int(arg)
    return None


def _answer_place(msg: InboundMessage) -> dict[str, Any] | None:
    """The thread a direct answer goes to: the command's own answer place, else the message's."""
    if msg.respond_to is not None:
        return dataclasses.asdict(ThreadRef(msg.platform, msg.channel, msg.respond_to))
    return message_to_json(msg)["thread"]


async def _unlimited(destination: str) -> None:
    """No rate budget (a router without an outbox worker)."""


class Router:
    def __init__(self, cfg: Config, store: Store, adapters: dict[str, ChatAdapter]) -> None:
        self.cfg, self.store, self.adapters = cfg, store, adapters
        self.on_inbound: InboundHandler | None = None
        self.wake: Wake = lambda: None
        # takes a message's worth of a destination's rate budget (OutboxWorker.spend)
        self.spend: Callable[[str], Awaitable[None]] = _unlimited
        self.storms = StormDesk(cfg, store, adapters)
        self.storms.wake = lambda: self.wake()
        self.storms.spend = lambda destination: self.spend(destination)

    # ---- outbound -------------------------------------------------------------------------
    def _adapter(self, item: Item) -> tuple[ChatAdapter, str]:
        platform, channel = item.destination.split(":", 1)
        adapter = self.adapters.get(platform)
        if adapter is None:
            raise PermanentError(f"{platform} is not configured")
        return adapter, channel

    @staticmethod
    async def _conversation(
        conn: AsyncConnection, incident_id: str, platform: str, channel: str
    ) -> Row[Any] | None:
        return (
            await conn.execute(
                select(t.threads).where(
                    t.threads.c.incident_id == incident_id,
                    t.threads.c.platform == platform,
                    t.threads.c.channel == channel,
                )
            )
        ).first()

    def more_url(self, inc: Incident) -> str | None:
        """Where a message cut to a platform's length can be read whole: the console."""
        if not self.cfg.http.public_url:
            return None
        return f"{self.cfg.http.public_url.rstrip('/')}/#/incidents/{inc.id}"

    def _prepared(self, reply: Reply, inc: Incident) -> Reply:
        reply.incident = root_view(self.cfg, inc).name
        reply.more_url = self.more_url(inc)
        return reply

    async def deliver(self, item: Item) -> None:
        """Outbox handler for post_root, open_thread (out of a storm), update_root and reply."""
        adapter, channel = self._adapter(item)
        incident_id = item.payload["incident_id"]
        if item.kind == "post_root" and await self.storms.absorb(item, adapter, channel):
            return  # named in the channel's storm digest instead
        async with self.store.read() as conn:
            inc = await lifecycle.get(conn, incident_id)
            row = await self._conversation(conn, incident_id, adapter.platform, channel)
        if item.kind in ("post_root", OPEN):
            await self._post_root(adapter, channel, inc, row, item.destination)
            return
        if row is not None and row.state == STORM:
            # only named in a storm's digest: a change edits the digest; what is said waits
            # for the thread (when it opens, its root shows the state, then the diagnosis)
            if item.kind == "update_root":
                await self.storms.changed(row.storm_id, item.destination)
            return
        if row is None or row.state != POSTED:
            raise PermanentError(f"no {adapter.platform} conversation for incident #{inc.short_id}")
        thread = ThreadRef(adapter.platform, channel, row.thread_id)
        if item.kind == "update_root":
            if not adapter.capabilities.can_edit:
                return  # no repeat messages; each state change is already a line of its own
            await self.spend(item.destination)
            # Changes committed from now on queue an edit of their own instead of folding into
            # this one, which shows the incident as it is read here, at send time.
            async with self.store.write() as conn:
                await outbox.release_coalesce_key(conn, item.id)
            async with self.store.read() as conn:
                inc = await lifecycle.get(conn, incident_id)
            await adapter.update_root(thread, root_view(self.cfg, inc))
            return
        await self.spend(item.destination)
        reply = reply_from_json(item.payload["reply"])
        if reply.diagnosis is not None and inc.status == Status.RESOLVED:
            reply = after_resolution(reply.diagnosis)
        reply = self._prepared(reply, inc)
        reply.key = f"outbox-{item.id}"
        message_id = await adapter.reply(thread, reply)
        prompt = _prompted_action(reply) if reply.kind == "approval" else None
        async with self.store.write() as conn:
            await conn.execute(
                update(t.threads)
                .where(t.threads.c.id == row.id)
                .values(
                    last_sent_at=utcnow(),
                    prompt_action_id=prompt,
                    prompt_message_id=message_id if prompt is not None else None,
                )
            )

    async def _post_root(
        self,
        adapter: ChatAdapter,
        channel: str,
        inc: Incident,
        row: Row[Any] | None,
        destination: str,
    ) -> None:
        """Post once: the intent (with its key) is committed before the call, so an attempt
        after a crash between the call and its record finds the root instead of posting again."""
        if row is not None and row.state == POSTED:
            return  # a retry after the record was written
        await self.spend(destination)
        key = root_key(inc.id, adapter.platform, channel)
        found: ThreadRef | None = None
        from_storm = row is not None and row.state == STORM
        if row is not None and from_storm:
            taken = await self.store.execute(
                update(t.threads)
                .where(t.threads.c.id == row.id, t.threads.c.state == STORM)
                .values(state=POSTING, post_key=key)
            )
            if not taken:
                raise TransientError(f"root of #{inc.short_id} is being posted")
        elif row is None:
            try:
                await self.store.execute(
                    insert(t.threads).values(
                        incident_id=inc.id,
                        platform=adapter.platform,
                        channel=channel,
                        thread_id=None,
                        created_at=utcnow(),
                        state=POSTING,
                        post_key=key,
                    )
                )
            except IntegrityError as exc:  # another worker holds this root's intent
                raise TransientError(f"root of #{inc.short_id} is being posted") from exc
        else:
            found = await adapter.find_root(channel, row.post_key or key)
        view = root_view(self.cfg, inc)
        if found is None:
            ref = await adapter.post_root(channel, view, key)
        else:
            ref = found
            log.info("root.recovered", incident=inc.id, platform=adapter.platform)
            if adapter.capabilities.can_edit:
                await adapter.update_root(ref, view)  # as of now, not as of the lost attempt
        # one thread hop: the write slot is not held while a busy event loop gets round to it
        await self.store.transact(
            _record_root, self.cfg, inc, (adapter.platform, channel), ref, from_storm
        )

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

    def _threaded(self, platform: str) -> bool:
        adapter = self.adapters.get(platform)
        return adapter is None or adapter.capabilities.has_threads

    async def incident_for(self, msg: InboundMessage) -> Incident | None:
        """The incident a message belongs to: named by the adapter, its thread, a button, or,
        on a line without threads, the incident this person was last sent."""
        async with self.store.read() as conn:
            if msg.incident_id is not None:
                try:
                    return await lifecycle.get(conn, msg.incident_id)
                except NotFound:
                    return None
            c = t.threads.c
            where = [c.platform == msg.platform, c.channel == msg.channel, c.state == POSTED]
            if msg.thread is not None and self._threaded(msg.platform):
                where.append(c.thread_id == msg.thread.thread_id)
            if msg.thread is not None or not self._threaded(msg.platform):
                row = (
                    await conn.execute(
                        select(c.incident_id)
                        .where(*where)
                        .order_by(c.last_sent_at.desc(), c.id.desc())
                        .limit(1)
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

    async def in_conversation(
        self, conn: AsyncConnection, msg: InboundMessage, inc: Incident
    ) -> bool:
        """Whether `msg` was said in one of `inc`'s conversations (its thread, or the line)."""
        row = await self._conversation(conn, inc.id, msg.platform, msg.channel)
        if row is None or row.state != POSTED:
            return False
        if not self._threaded(msg.platform):
            return True
        return msg.thread is not None and msg.thread.thread_id == row.thread_id

    async def _take_prompt(self, msg: InboundMessage, inc: Incident | None) -> int | None:
        """The action whose approval prompt `msg` directly answers: the message replies to the
        prompt, or the prompt was the last thing said in the conversation. Any message said
        there ends that: a "yes" to a colleague is not an answer to the bot."""
        if inc is None:
            return None
        async with self.store.write() as conn:
            if not await self.in_conversation(conn, msg, inc):
                return None
            row = await self._conversation(conn, inc.id, msg.platform, msg.channel)
            assert row is not None
            if row.prompt_action_id is None:
                return None
            answered = msg.reply_to is None or msg.reply_to == row.prompt_message_id
            await conn.execute(
                update(t.threads)
                .where(t.threads.c.id == row.id)
                .values(prompt_action_id=None, prompt_message_id=None)
            )
        return int(row.prompt_action_id) if answered else None

    async def handle(self, item: Item) -> None:
        """Outbox handler for `inbound`: find the incident, then let the dispatcher decide."""
        msg = message_from_json(item.payload)
        inc = await self.incident_for(msg)
        prompt = None if msg.action else await self._take_prompt(msg, inc)
        if self.on_inbound is None:
            await self.answer(msg, inc, Reply("I can't act on messages yet.", "error"))
            return
        await self.on_inbound(msg, inc, prompt)

    async def answer(self, msg: InboundMessage, inc: Incident | None, reply: Reply) -> None:
        """Reply where the message came from: where its platform wants a command's answer, in
        the incident's conversation when it was said there, else in that place itself (a DM,
        a channel, a slash command's channel)."""
        async with self.store.write() as conn:
            if (
                inc is not None
                and msg.respond_to is None
                and await self.in_conversation(conn, msg, inc)
            ):
                await lifecycle.enqueue_reply(
                    conn, self.cfg, inc, reply, only=(msg.platform, msg.channel)
                )
            else:
                await outbox.enqueue(
                    conn,
                    "direct",
                    f"{msg.platform}:{msg.channel}",
                    {
                        "reply": reply_to_json(reply),
                        "thread": _answer_place(msg),
                        "incident_id": inc.id if inc else None,
                    },
                    ordering_key=f"{msg.platform}:{msg.channel}:direct",
                )
        self.wake()

    async def answer_asked(self, asked: dict[str, Any], inc: Incident, reply: Reply) -> None:
        """`answer` for a message kept as JSON (by a job that answers it later)."""
        await self.answer(message_from_json(asked), inc, reply)

    async def deliver_direct(self, item: Item) -> None:
        """Outbox handler for `direct`: an answer outside any incident's conversation."""
        adapter, channel = self._adapter(item)
        th = item.payload.get("thread")
        ref = ThreadRef(**th) if th else ThreadRef(adapter.platform, channel, "")
        reply = reply_from_json(item.payload["reply"])
        reply.key = f"outbox-{item.id}"
        await self.spend(item.destination)
        if item.payload.get("incident_id"):
            async with self.store.read() as conn:
                inc = await lifecycle.get(conn, item.payload["incident_id"])
            self._prepared(reply, inc)
            name = root_view(self.cfg, inc).name
            if name.ref not in reply.text:  # said outside the incident: say which one
                reply.text = f"{name.label}: {reply.text}"
        await adapter.reply(ref, reply)


def _record_root(
    conn: Connection,
    cfg: Config,
    inc: Incident,
    place: lifecycle.Place,
    ref: ThreadRef,
    from_storm: bool,
) -> None:
    """A root is posted: its thread is recorded; one that was a line of a storm's digest
    is told the diagnosis made meanwhile."""
    platform, channel = place
    conn.execute(
        update(t.threads)
        .where(
            t.threads.c.incident_id == inc.id,
            t.threads.c.platform == platform,
            t.threads.c.channel == channel,
        )
        .values(thread_id=ref.thread_id, state=POSTED, last_sent_at=utcnow())
    )
    if from_storm:
        _latest_diagnosis(conn, cfg, inc, place)


def _latest_diagnosis(conn: Connection, cfg: Config, inc: Incident, place: lifecycle.Place) -> None:
    """Say an incident's latest diagnosis in a thread that opened after it was made."""
    o, d = t.outbox.c, t.diagnoses.c
    key = lifecycle.conversation_key(place[0], place[1], inc.id)
    coming = conn.scalar(
        select(o.id).where(
            o.ordering_key == key,
            o.kind == "reply",
            o.priority == Priority.DIAGNOSIS,
            o.status == "pending",
        )
    )
    if coming is not None:
        return  # a diagnosis on its way to the thread says it
    payload = conn.scalar(
        select(d.payload).where(d.incident_id == inc.id).order_by(d.id.desc()).limit(1)
    )
    if payload is None:
        return  # still to come: it is said in the thread when it is made
    diagnosis = Diagnosis.model_validate(payload)
    reply = Reply(diagnosis_text(diagnosis), "diagnosis", diagnosis=diagnosis)
    outbox.enqueue_many(conn, lifecycle.reply_items(inc, reply, [place]))
