"""Storms: when new incidents for a channel outrun what its budget can post, the channel gets
one digest message naming them all, edited as they arrive and resolve, instead of a root each.

A root about to be posted (`post_root`) at a rate-limited channel that can edit its messages
is absorbed when the channel has a storm, or starts one when more new incidents wait for it
than its budget posts in `storm.window_s`: every root waiting there becomes a line in the
storm's digest (a `threads` row in state `storm`). Changes to those incidents edit the digest
(coalesced, at most every `storm.edit_interval_s`, at most `storm.max_edits` times per message,
then it goes on in a new message). A platform that cannot edit (WhatsApp) gets the storm as it
is now in a new message instead, at most every `storm.resend_interval_s`. An incident's own
thread opens when a person acts on it (a button on the digest, `#42` in the channel, any
command naming it) or when the storm ends (no new incident for `storm.quiet_s`, and no more
open than the channel posts at once) while it is still open; its latest diagnosis follows its
root there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app.config import Config
from bot.chat.adapters import rate_limited
from bot.chat.adapters.base import ChatAdapter
from bot.chat.events import EventBus
from bot.chat.messages import StormDigest, StormLine
from bot.chat.render import storm_buttons
from bot.chat.renderers import console_json
from bot.incidents import lifecycle
from bot.incidents.models import aware, iso, utcnow
from bot.queue import outbox
from bot.queue.outbox import Item, Priority
from bot.store import Store, insert_or_ignore
from bot.store import schema as t
from integrations.errors import PermanentError, RateLimited

log = structlog.get_logger(__name__)

STORM = "storm"  # a threads row whose incident is named in a storm's digest, without a root
DIGEST = "storm_digest"  # the outbox kind that posts or edits a digest
OPEN = "open_thread"  # the outbox kind that opens an incident's own thread out of a storm


class StormDesk:
    """Storm state per channel: absorbing roots, the digest, opening threads, ending storms."""

    def __init__(self, cfg: Config, store: Store, adapters: dict[str, ChatAdapter]) -> None:
        self.cfg, self.store, self.adapters = cfg, store, adapters
        self.bus: EventBus | None = None  # the console hears of every digest
        self.wake: Callable[[], None] = lambda: None
        self.clock: Callable[[], datetime] = utcnow
        self.spend: Callable[[str], Awaitable[None]] = _unlimited  # the router's

    def threshold(self, destination: str) -> int:
        """New incidents a destination's budget (its platform's) posts in the storm window."""
        rate, burst = self.cfg.outbox.limits(destination)
        return burst + int(rate * self.cfg.storm.window_s)

    def applies(self, adapter: ChatAdapter, channel: str) -> bool:
        return self.cfg.storm.enabled and rate_limited(f"{adapter.platform}:{channel}")

    def _interval(self, destination: str) -> float:
        """How long a digest's changes wait to be shown: an edit, or, where messages cannot
        be edited, the next message of the storm."""
        adapter = self.adapters.get(destination.partition(":")[0])
        if adapter is None or adapter.capabilities.can_edit:
            return self.cfg.storm.edit_interval_s
        return self.cfg.storm.resend_interval_s

    # ---- roots into the digest --------------------------------------------------------------
    async def absorb(self, item: Item, adapter: ChatAdapter, channel: str) -> bool:
        """Name `item`'s incident in the channel's storm (starting one if its waiting roots
        are too many) instead of posting its root: True when it was."""
        if not self.applies(adapter, channel):
            return False
        platform, now = adapter.platform, self.clock()
        async with self.store.read() as conn:  # the common case, no storm: no write turn
            if await _being_posted(conn, item, platform, channel):
                return False  # its root was attempted already: it is seen through
            calm = await _open_storm(conn, platform, channel) is None
            if calm and await self._waiting(conn, item.destination, now) <= self.threshold(
                item.destination
            ):
                return False
        for attempt in range(2):  # another replica may open the same storm at the same moment
            try:
                async with self.store.write() as conn:
                    if await _being_posted(conn, item, platform, channel):
                        return False
                    storm = await _open_storm(conn, platform, channel)
                    if storm is None:
                        storm_id = await self._start(conn, platform, channel, now)
                    else:
                        storm_id = storm.id
                    await self._take_waiting_roots(
                        conn, storm_id, item.destination, now, item.payload["incident_id"]
                    )
                    await self._queue_digest(conn, storm_id, item.destination)
                break
            except IntegrityError:
                if attempt:
                    raise
        self.wake()
        return True

    async def _waiting(self, conn: AsyncConnection, destination: str, now: datetime) -> int:
        """New incidents for `destination`: roots waiting to be posted, and those posted
        within the window (what the budget has already spent)."""
        o, th = t.outbox.c, t.threads.c
        waiting = await conn.scalar(
            select(func.count()).where(
                o.kind == "post_root", o.destination == destination, o.status == "pending"
            )
        )
        platform, _, channel = destination.partition(":")
        recent = await conn.scalar(
            select(func.count()).where(
                th.platform == platform,
                th.channel == channel,
                th.created_at >= now - timedelta(seconds=self.cfg.storm.window_s),
            )
        )
        return int(waiting or 0) + int(recent or 0)

    async def _start(
        self, conn: AsyncConnection, platform: str, channel: str, now: datetime
    ) -> int:
        result = await conn.execute(
            t.storms.insert().values(
                platform=platform,
                channel=channel,
                started_at=now,
                last_new_at=now,
                open_key=f"{platform}:{channel}",
            )
        )
        storm_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        log.warning("storm.started", platform=platform, channel=channel, storm=storm_id)
        return storm_id

    async def _take_waiting_roots(
        self, conn: AsyncConnection, storm_id: int, destination: str, now: datetime, *also: str
    ) -> int:
        """Every root waiting for the channel (and `also`'s incidents) becomes a line of the
        digest: the storm's newest news. Returns how many roots were waiting."""
        o = t.outbox.c
        rows = (
            await conn.execute(
                select(o.id, o.incident_id).where(
                    o.kind == "post_root", o.destination == destination, o.status == "pending"
                )
            )
        ).all()
        platform, _, channel = destination.partition(":")
        th = t.threads.c
        attempted = set(
            (
                await conn.execute(
                    select(th.incident_id).where(
                        th.platform == platform,
                        th.channel == channel,
                        th.incident_id.in_([r.incident_id for r in rows]),
                        th.state != STORM,
                    )
                )
            ).scalars()
        )
        rows = [r for r in rows if r.incident_id not in attempted]
        incidents = {r.incident_id for r in rows} | set(also)
        if not incidents:
            return 0
        await conn.execute(
            insert_or_ignore(conn.dialect.name, t.threads),
            [
                {
                    "incident_id": incident_id,
                    "platform": platform,
                    "channel": channel,
                    "thread_id": None,
                    "created_at": now,
                    "state": STORM,
                    "storm_id": storm_id,
                }
                for incident_id in sorted(incidents)
            ],
        )
        if rows:
            await conn.execute(
                update(t.outbox)
                .where(t.outbox.c.id.in_([r.id for r in rows]))
                .values(status="done", done_at=now, locked_until=None)
            )
        await conn.execute(
            update(t.storms).where(t.storms.c.id == storm_id).values(last_new_at=now)
        )
        return len(rows)

    async def changed(self, storm_id: int, destination: str) -> None:
        """An incident of the storm changed: its digest is edited (soon, coalesced)."""
        async with self.store.write() as conn:
            await self._queue_digest(conn, storm_id, destination)

    async def _queue_digest(
        self,
        conn: AsyncConnection,
        storm_id: int,
        destination: str,
        *,
        at_once: bool = False,
        look: bool = False,
    ) -> None:
        """Show the storm as it is: at once when it has no message yet (or `at_once`), else
        an interval on, the changes until then coalesced into one edit or message. `look`: an
        interval on, and only if more roots wait for the channel by then (while a storm grows,
        new incidents whose root items have not been claimed yet)."""
        posted = await conn.scalar(select(t.storms.c.message_id).where(t.storms.c.id == storm_id))
        at_once = (at_once or posted is None) and not look
        if not look:  # a look waiting (not under way) would only hold this one up: dropped
            o, now = t.outbox.c, utcnow()
            await conn.execute(
                update(t.outbox)
                .where(
                    o.coalesce_key == f"storm-look:{storm_id}",
                    o.status == "pending",
                    or_(o.locked_until.is_(None), o.locked_until < now),
                )
                .values(status="done", done_at=now, coalesce_key=None)
            )
        await outbox.enqueue(
            conn,
            DIGEST,
            destination,
            {"storm_id": storm_id, "look": look},
            ordering_key=f"storm:{storm_id}",
            coalesce_key=f"storm-look:{storm_id}" if look else f"storm:{storm_id}",
            delay_s=0 if at_once else self._interval(destination),
            priority=Priority.DIGEST,
        )

    async def _more_named(self, storm_id: int, destination: str) -> bool:
        """Name the roots waiting for the channel in its storm: True if there were any."""
        async with self.store.write() as conn:
            ended = await conn.scalar(select(t.storms.c.ended_at).where(t.storms.c.id == storm_id))
            if ended is not None:
                return False
            return await self._take_waiting_roots(conn, storm_id, destination, self.clock()) > 0

    # ---- the digest -------------------------------------------------------------------------
    async def deliver(self, item: Item) -> None:
        """Outbox handler for the digest: post it, or edit it to show the storm as it is now,
        with every root waiting for the channel named in it (not one claim of theirs each)."""
        storm_id = int(item.payload["storm_id"])
        if item.payload.get("look") and not await self._more_named(storm_id, item.destination):
            return  # no new incident for the channel since the last look: nothing to show
        adapter = self.adapters[item.destination.partition(":")[0]]
        caps = adapter.capabilities
        await self.spend(item.destination)
        async with self.store.write() as conn:
            await outbox.release_coalesce_key(conn, item.id)  # later changes: another edit
            storm = (await conn.execute(select(t.storms).where(t.storms.c.id == storm_id))).one()
            if storm.ended_at is None:
                await self._take_waiting_roots(conn, storm_id, item.destination, self.clock())
            fresh = (
                storm.message_id is None
                or storm.edits >= self.cfg.storm.max_edits
                or not caps.can_edit  # each change is the next message
            )
            part = storm.part + (storm.message_id is not None and fresh)
            attempted = fresh and storm.posting_part == part  # its answer may have been lost
            if fresh and not attempted:  # the intent, before the call: see `attempted`
                await conn.execute(
                    update(t.storms).where(t.storms.c.id == storm_id).values(posting_part=part)
                )
            storm = (await conn.execute(select(t.storms).where(t.storms.c.id == storm_id))).one()
            lines = await _lines(conn, storm_id)
        over = storm.ended_at is not None
        digest = StormDigest(
            lines,
            (
                (aware(storm.last_new_at) or utcnow()) - (aware(storm.started_at) or utcnow())
            ).total_seconds(),
            over=over,
            part=part,
            buttons=[] if over else storm_buttons(lines, caps.buttons_per_message),
        )
        values: dict[str, Any] = {"edits": t.storms.c.edits + 1}
        if fresh:
            values = await self._post(adapter, storm, digest, attempted)
        else:
            await adapter.update_digest(storm.channel, storm.message_id, digest)
        async with self.store.write() as conn:
            await conn.execute(update(t.storms).where(t.storms.c.id == storm_id).values(**values))
            growing = self.clock() - (aware(storm.last_new_at) or utcnow())
            if not over and growing.total_seconds() <= self._interval(item.destination):
                await self._queue_digest(conn, storm_id, item.destination, look=True)
        if self.bus is not None:
            shown = console_json.storm(digest, caps)
            self.bus.publish(
                "storm", {"platform": storm.platform, "channel": storm.channel, **shown}
            )

    async def _post(
        self, adapter: ChatAdapter, storm: Row[Any], digest: StormDigest, attempted: bool
    ) -> dict[str, Any]:
        """Post the digest as a new message, once: after an attempt whose answer was lost, the
        message it made is looked for (by key) and edited instead. Returns what to record."""
        key = f"storm-{storm.id}-{digest.part}"
        found = await adapter.find_digest(storm.channel, key) if attempted else None
        if found is not None:  # shown as it is now, not as of the lost attempt
            log.info("storm.digest_recovered", storm=storm.id, part=digest.part)
            await adapter.update_digest(storm.channel, found, digest)
            return {"message_id": found, "part": digest.part, "edits": 1, "posting_part": None}
        try:
            message_id = await adapter.post_digest(storm.channel, digest, key)
        except (RateLimited, PermanentError):  # refused: surely not posted, nothing to look for
            await self.store.execute(
                update(t.storms).where(t.storms.c.id == storm.id).values(posting_part=None)
            )
            raise
        return {"message_id": message_id, "part": digest.part, "edits": 0, "posting_part": None}

    # ---- threads out of the digest ----------------------------------------------------------
    @staticmethod
    async def named_only(
        conn: AsyncConnection, incident_id: str, platform: str, channel: str
    ) -> bool:
        """Whether the incident is only a line of a storm's digest at `channel`."""
        return await _storm_row(conn, incident_id, platform, channel) is not None

    async def open_for(
        self, conn: AsyncConnection, incident_id: str, platform: str, channel: str
    ) -> bool:
        """A person acted on an incident at `channel`: if it is only named in a storm's
        digest there, its own thread opens (ahead of background work). True if it will."""
        row = await _storm_row(conn, incident_id, platform, channel)
        if row is None:
            return False
        await outbox.enqueue(
            conn,
            OPEN,
            f"{platform}:{channel}",
            {"incident_id": incident_id},
            ordering_key=lifecycle.conversation_key(platform, channel, incident_id),
            incident_id=incident_id,
            coalesce_key=f"open:{platform}:{channel}:{incident_id}",
            priority=Priority.PEOPLE,
        )
        return True

    async def tick(self) -> None:
        """End the storms that have calmed down: each incident still open gets its thread,
        and the digest says the storm is over (leader step)."""
        now = self.clock()
        quiet = now - timedelta(seconds=self.cfg.storm.quiet_s)
        s, th, i = t.storms.c, t.threads.c, t.incidents.c
        calming = select(t.storms).where(s.ended_at.is_(None), s.last_new_at <= quiet)
        if not await self.store.finds(calming):  # the usual case: no write slot taken
            return
        async with self.store.write() as conn:
            calm = (await conn.execute(calming)).all()
            for storm in calm:
                still_open = (
                    (
                        await conn.execute(
                            select(th.incident_id)
                            .join(t.incidents, i.id == th.incident_id)
                            .where(
                                th.storm_id == storm.id, th.state == STORM, i.status != "resolved"
                            )
                            .order_by(th.id)
                        )
                    )
                    .scalars()
                    .all()
                )
                if len(still_open) > self.threshold(f"{storm.platform}:{storm.channel}"):
                    continue  # a thread each would be a storm again: the digest stays
                await conn.execute(
                    update(t.storms).where(s.id == storm.id).values(ended_at=now, open_key=None)
                )
                for incident_id in still_open:
                    await self.open_for(conn, incident_id, storm.platform, storm.channel)
                await self._queue_digest(
                    conn, storm.id, f"{storm.platform}:{storm.channel}", at_once=True
                )
                log.warning(
                    "storm.over",
                    platform=storm.platform,
                    channel=storm.channel,
                    storm=storm.id,
                    opened=len(still_open),
                )
        if calm:
            self.wake()


async def _unlimited(destination: str) -> None:
    """No rate budget (a desk without an outbox worker)."""


async def _being_posted(conn: AsyncConnection, item: Item, platform: str, channel: str) -> bool:
    th = t.threads.c
    state = await conn.scalar(
        select(th.state).where(
            th.incident_id == item.payload["incident_id"],
            th.platform == platform,
            th.channel == channel,
        )
    )
    return state is not None and state != STORM


async def _open_storm(conn: AsyncConnection, platform: str, channel: str) -> Row[Any] | None:
    return (
        await conn.execute(select(t.storms).where(t.storms.c.open_key == f"{platform}:{channel}"))
    ).first()


async def _storm_row(
    conn: AsyncConnection, incident_id: str, platform: str, channel: str
) -> Row[Any] | None:
    th = t.threads.c
    return (
        await conn.execute(
            select(t.threads).where(
                th.incident_id == incident_id,
                th.platform == platform,
                th.channel == channel,
                th.state == STORM,
            )
        )
    ).first()


async def _lines(conn: AsyncConnection, storm_id: int) -> list[StormLine]:
    th, i = t.threads.c, t.incidents.c
    rows = (
        await conn.execute(
            select(i.id, i.short_id, i.title, i.service, i.severity, i.status)
            .join(t.threads, th.incident_id == i.id)
            .where(th.storm_id == storm_id)
            .order_by(th.id)
        )
    ).all()
    return [StormLine(r.id, r.short_id, r.title, r.service, r.severity, r.status) for r in rows]


async def current(conn: AsyncConnection) -> list[dict[str, Any]]:
    """The storms going on now, per channel (for /stats and the console)."""
    s, th, i = t.storms.c, t.threads.c, t.incidents.c
    rows = (
        await conn.execute(
            select(
                s.platform,
                s.channel,
                s.started_at,
                s.part,
                func.count(th.id).label("incidents"),
                func.count(th.id).filter(i.status != "resolved").label("open"),
            )
            .join(t.threads, th.storm_id == s.id)
            .join(t.incidents, i.id == th.incident_id)
            .where(s.ended_at.is_(None))
            .group_by(s.id, s.platform, s.channel, s.started_at, s.part)
        )
    ).all()
    return [
        {
            "platform": r.platform,
            "channel": r.channel,
            "since": iso(r.started_at),
            "incidents": int(r.incidents),
            "open": int(r.open),
            "messages": int(r.part),
        }
        for r in rows
    ]
