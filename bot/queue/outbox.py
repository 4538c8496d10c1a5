"""The durable outbound queue: every message, edit and slow job goes through it.

Items are committed with the change that caused them, claimed under a lease by an owner (a
replica's id; FOR UPDATE SKIP LOCKED on PostgreSQL), delivered in order per `ordering_key`
(one thread), retried with exponential backoff and jitter, rate-limited per destination, and
dead-lettered after `max_attempts`. Due items are claimed by `Priority`; a person's work has a
lane of its own, so it never waits for a free slot behind background jobs. The lease is renewed while the work runs (a diagnosis may
outlast it); a crash leaves it to lapse, or its owner's heartbeat to stop, and another replica
(or this one, restarted) delivers the item.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, Protocol

import structlog
from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app import metrics
from bot.app.config import OutboxConfig
from bot.chat.adapters import rate_limited
from bot.errors import StoreUnavailable
from bot.incidents.models import aware, utcnow
from bot.queue.budget import Budget, LocalBudget
from bot.queue.health import WorkerHealth
from bot.store import Store, background_work, foreground_work, insert_or_ignore
from bot.store import schema as t
from integrations.errors import PermanentError, RateLimited

log = structlog.get_logger(__name__)

CHAT_KINDS = frozenset({"post_root", "update_root", "reply", "open_thread", "storm_digest"})


class OverBudget(Exception):
    """A destination's rate budget is spent: the item waits `wait_s` (not an attempt)."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"rate budget spent for {wait_s:.1f} s")
        self.wait_s = wait_s


class Priority(IntEnum):
    """Claim order: lowest first; PEOPLE items also have a lane of their own."""

    PEOPLE = 0  # a person's message or click, and what it asked for
    DIGEST = 1  # a storm's digest: it names many new incidents at once
    NEWS = 2  # a new incident, a change of state, what is said in its thread
    DIAGNOSIS = 3
    REST = 4  # tickets, postmortems, ...


KIND_PRIORITY = {
    "inbound": Priority.PEOPLE,
    "direct": Priority.PEOPLE,
    "question": Priority.PEOPLE,
    "action": Priority.PEOPLE,
    "open_thread": Priority.PEOPLE,  # out of a storm's digest, because someone acted on it
    "post_root": Priority.NEWS,
    "storm_digest": Priority.DIGEST,
    "update_root": Priority.NEWS,
    "reply": Priority.NEWS,
    "escalate": Priority.NEWS,
    "diagnose": Priority.DIAGNOSIS,
}


@dataclass(slots=True)
class Item:
    id: int
    kind: str
    destination: str
    ordering_key: str
    incident_id: str | None
    payload: dict[str, Any]
    attempts: int
    priority: int = Priority.REST


Handler = Callable[[Item], Awaitable[None]]


def item(
    kind: str,
    destination: str,
    payload: dict[str, Any],
    *,
    ordering_key: str | None = None,
    incident_id: str | None = None,
    coalesce_key: str | None = None,
    delay_s: float = 0.0,
    priority: Priority | None = None,
) -> dict[str, Any]:
    """One outbox row; with a `coalesce_key` it is dropped while a pending twin exists. Its
    priority is its kind's unless given."""
    now = utcnow()
    return {
        "kind": kind,
        "destination": destination,
        "ordering_key": ordering_key or f"{destination}:{incident_id or kind}",
        "incident_id": incident_id,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now + timedelta(seconds=delay_s),
        "coalesce_key": coalesce_key,
        "created_at": now,
        "priority": int(
            priority if priority is not None else KIND_PRIORITY.get(kind, Priority.REST)
        ),
    }


def enqueue_many(conn: Connection, items: list[dict[str, Any]]) -> None:
    """Queue rows from `item()` in the caller's transaction, in one statement."""
    if items:
        conn.execute(insert_or_ignore(conn.dialect.name, t.outbox), items)


PEOPLE_ONLY = t.outbox.c.priority == Priority.PEOPLE


class Owners(Protocol):
    """Which claim owners are gone (bot.cluster.replica.Replica), as SQL conditions."""

    def missing_owner(self, owner: Any) -> ColumnElement[bool]: ...

    def dead_owner(self, owner: Any, alive_since: Any = None) -> ColumnElement[bool]: ...

    def alive_since(self, now: datetime) -> datetime: ...


@dataclass(frozen=True, slots=True)
class ClaimQuery:
    """A claim's two statements, built once: is anything due (`probe`), and take it."""

    probe: Select[Any]
    take: Select[Any]


async def enqueue(
    conn: AsyncConnection,
    kind: str,
    destination: str,
    payload: dict[str, Any],
    *,
    ordering_key: str | None = None,
    incident_id: str | None = None,
    coalesce_key: str | None = None,
    delay_s: float = 0.0,
    priority: Priority | None = None,
) -> bool:
    """Queue one item in the caller's transaction; False when coalesced into a pending twin."""
    row = item(
        kind,
        destination,
        payload,
        ordering_key=ordering_key,
        incident_id=incident_id,
        coalesce_key=coalesce_key,
        delay_s=delay_s,
        priority=priority,
    )
    done = await conn.execute(insert_or_ignore(conn.dialect.name, t.outbox).values(row))
    return bool(done.rowcount)


async def release_coalesce_key(conn: AsyncConnection, item_id: int) -> None:
    """From now on, a change queues an item of its own instead of folding into this one (which
    is being delivered, and has read what it sends already or is about to)."""
    await conn.execute(update(t.outbox).where(t.outbox.c.id == item_id).values(coalesce_key=None))


class OutboxWorker:
    """Claims due items and runs the handler registered for their kind."""

    def __init__(
        self,
        store: Store,
        handlers: dict[str, Handler],
        cfg: OutboxConfig,
        *,
        owner: str | None = None,
        owners: Owners | None = None,
        budget: Budget | None = None,
        on_dead: Callable[[Item, str], Awaitable[None]] | None = None,
        concurrency: int = 8,
        poll_s: float = 0.5,
    ) -> None:
        """`owner` names this worker's claims; `owners` tells which owners are gone (a claim
        is then taken over once its lease lapses); `budget` is the per-destination rate."""
        self.store, self.handlers, self.cfg = store, handlers, cfg
        self.on_dead = on_dead
        self.worker_id = owner or uuid.uuid4().hex[:12]
        self.owners = owners
        self.concurrency, self.poll_s = concurrency, poll_s
        self.budget = budget or LocalBudget(cfg.limits)
        self._wake = asyncio.Event()
        self.ingesting: Callable[[], bool] = lambda: False  # webhooks waiting to be written
        self._stopping = False
        self._running: set[asyncio.Task[None]] = set()
        self._people: set[asyncio.Task[None]] = set()  # the people's lane
        self._background: set[asyncio.Task[None]] = set()
        self._delivered: list[int] = []
        self._marking = asyncio.Lock()
        self._held: set[int] = set()  # claimed items being delivered: their leases are renewed
        self._claims: dict[Any, ClaimQuery] = {}
        self._look_people = True  # the people's lane may have due items
        self.health = WorkerHealth()

    def wake(self, *, people: bool = True) -> None:
        """Look for due items now. `people=False` when only background work can be new (a
        webhook's news, a background item finished): the people's lane is not probed."""
        self._look_people = self._look_people or people
        self._wake.set()

    async def spend(self, destination: str) -> None:
        """A handler about to send a message to `destination` takes it from the destination's
        rate budget first (remote chat channels only): `OverBudget` when it must wait, and
        the item is tried again then (not counted as an attempt). Handlers that end up
        sending nothing (a line of a storm's digest) spend nothing."""
        if rate_limited(destination):
            wait = await self.budget.take(destination)
            if wait > 0:
                raise OverBudget(wait)

    async def run(self) -> None:
        """Claim and deliver until stopped; any unexpected error restarts the loop after
        `restart_s` (logged, counted, and reported by /readyz meanwhile). Items it held are
        claimed again once their leases lapse: nothing is lost, and each is done once."""
        background_work()
        renewer = asyncio.create_task(self._renew_leases(), name="outbox-lease-renewal")
        try:
            while not self._stopping:
                try:
                    await self._loop()
                except Exception:
                    log.exception("outbox.worker_crashed")
                    self.health.crashed()
                    await asyncio.sleep(self.cfg.restart_s)
                    self.health.restarted()
        finally:
            renewer.cancel()

    async def _renew_leases(self) -> None:
        """Extend the lease of every item still being delivered, every third of a lease."""
        while True:
            await asyncio.sleep(self.cfg.lease_s / 3)
            if not self._held:
                continue
            try:
                async with self.store.write() as conn:
                    await conn.execute(
                        update(t.outbox)
                        .where(
                            t.outbox.c.id.in_(sorted(self._held)),
                            t.outbox.c.locked_by == self.worker_id,
                            t.outbox.c.status == "pending",
                        )
                        .values(locked_until=utcnow() + timedelta(seconds=self.cfg.lease_s))
                    )
            except Exception as exc:  # renewals go on; a lapsed lease is safe anyway
                log.warning("outbox.renew_failed", error=str(exc))

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            again = False
            for lane, room, only in self._lanes():
                if only is PEOPLE_ONLY:
                    if not self._look_people or room <= 0:
                        continue  # (a full lane looks when a slot frees)
                    self._look_people = False  # a wake while claiming sets it again
                try:
                    items = await self._claim(room, only)
                except StoreUnavailable as exc:
                    log.warning("outbox.claim_failed", error=str(exc))
                    items = []
                for item in items:
                    task = asyncio.create_task(self._deliver(item))
                    lane.add(task)
                    self._running.add(task)
                    task.add_done_callback(self._done)
                if only is PEOPLE_ONLY and items:
                    self._look_people = True  # more may wait behind them
                again = again or bool(items and room > len(items))
            if again:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except TimeoutError:
                self._look_people = True  # what fell due meanwhile, in every lane

    def _lanes(self) -> list[tuple[set[asyncio.Task[None]], int, Any]]:
        """(its tasks, free slots, which items) per lane: people's work first, in a lane no
        background job can fill; then everything by priority. While webhooks are being
        written, the background lane takes one item at a time: they get the CPU first, and
        the queue still moves (never starved)."""
        background = 1 if self.ingesting() else self.concurrency
        return [
            (self._people, self.cfg.people_concurrency - len(self._people), PEOPLE_ONLY),
            (self._background, background - len(self._background), None),
        ]

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        people = task in self._people
        self._people.discard(task)
        self._background.discard(task)
        self.wake(people=people)  # a slot is free in its lane

    async def stop(self, drain_s: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._running:
            await asyncio.wait(self._running, timeout=drain_s)

    async def run_once(self) -> int:
        """Deliver everything due now (tests and the CLI); returns how many were attempted."""
        items = await self._claim(100)
        await asyncio.gather(*(self._deliver(i) for i in items))
        return len(items)

    async def run_now(self, kind: str, incident_ids: list[str]) -> None:
        """Deliver the pending `kind` items of these incidents at once (if not already taken),
        on the caller's time: a refusal is rescheduled, never waited out here."""
        o = t.outbox
        items = await self._claim(100, and_(o.c.kind == kind, o.c.incident_id.in_(incident_ids)))
        await asyncio.gather(*(self._deliver(i, may_wait=False) for i in items))

    async def _claim(self, limit: int, only: Any = None) -> list[Item]:
        if limit <= 0:
            return []
        now = utcnow()
        if only is None or only is PEOPLE_ONLY:  # a lane's: built once, claimed on every wake
            query = self._claims.get(only)
            if query is None:
                query = self._claims[only] = self._claim_query(only)
        else:
            query = self._claim_query(only)
        params = {
            "now": now,
            "held": sorted(self._held),
            "limit": limit,
            "alive_since": self.owners.alive_since(now) if self.owners else now,
        }
        async with self.store.read() as conn:  # nothing due: no write turn taken
            if (await conn.execute(query.probe, {**params, "limit": 1})).first() is None:
                self.health.progressed()  # looked, and nothing waits on this worker
                return []
        lease_until = now + timedelta(seconds=self.cfg.lease_s)
        rows = await self.store.transact(_take, query.take, params, lease_until, self.worker_id)
        return [
            Item(
                r.id,
                r.kind,
                r.destination,
                r.ordering_key,
                r.incident_id,
                r.payload,
                r.attempts,
                r.priority,
            )
            for r in rows
        ]

    def _claim_query(self, only: Any) -> ClaimQuery:
        """The due items free to take (`only` those, if given), first of their ordering key,
        by priority then age; bound to `now`, `held`, `alive_since` and `limit`."""
        o, earlier = t.outbox, t.outbox.alias("earlier")
        now = bindparam("now", type_=o.c.next_attempt_at.type)
        lapsed = or_(o.c.locked_until.is_(None), o.c.locked_until < now)
        free = lapsed
        if self.owners is not None:
            # A lapsed lease of another live owner is still its (renewals fail in an outage
            # while the work goes on); ours, on an item we no longer work on, is free again.
            held = bindparam("held", expanding=True, type_=o.c.id.type)
            since = bindparam("alive_since", type_=t.replicas.c.seen_at.type)
            mine = and_(o.c.locked_by == self.worker_id, o.c.id.not_in(held))
            free = or_(
                o.c.locked_until.is_(None),
                self.owners.missing_owner(o.c.locked_by),
                and_(lapsed, or_(mine, self.owners.dead_owner(o.c.locked_by, since))),
            )
        # The first pending item of its ordering key. A scalar subquery, not NOT EXISTS: the
        # planner cannot turn it into a join, so it is one ix_outbox_order lookup per row
        # even when the table's statistics are stale (a fresh database, a storm), where an
        # anti-join compared every pending row with every other (seconds a claim).
        first_of_key = (
            select(func.min(earlier.c.id))
            .where(earlier.c.ordering_key == o.c.ordering_key, earlier.c.status == "pending")
            .scalar_subquery()
        )
        query = (
            select(o)
            .where(
                o.c.status == "pending",
                o.c.next_attempt_at <= now,
                free,
                o.c.id == first_of_key,
                true() if only is None else only,
            )
            .order_by(o.c.priority, o.c.id)
            .limit(bindparam("limit", type_=Integer))
        )
        return ClaimQuery(
            probe=query.with_only_columns(o.c.id),
            take=query.with_for_update(skip_locked=True, of=o),
        )

    async def _deliver(self, item: Item, *, may_wait: bool = True) -> None:
        # this task's writes yield to webhooks, unless a person waits for them (each task has
        # its own context)
        if item.priority == Priority.PEOPLE:
            foreground_work()
        else:
            background_work()
        self._held.add(item.id)
        try:
            await self._attempt(item, may_wait=may_wait)
        except StoreUnavailable as exc:
            # our store failed, not the destination: no attempt is counted; the lease lapses
            # and the item is claimed again once the store is back
            log.warning("outbox.store_unavailable", item=item.id, kind=item.kind, error=str(exc))
        except Exception:
            # the worker's own bookkeeping failed: the item's lease lapses, and it is claimed
            # again (its handler is idempotent)
            log.exception("outbox.delivery_crashed", item=item.id, kind=item.kind)
        finally:
            self._held.discard(item.id)

    async def _attempt(self, item: Item, *, may_wait: bool) -> None:
        """Run the item's handler; `may_wait`: a short Retry-After is waited out in place."""
        handler = self.handlers.get(item.kind)
        if handler is None:
            await self._dead(item, f"no handler for {item.kind!r}")
            return
        refused = False  # told Retry-After, and waiting it out in place
        while True:
            try:
                await handler(item)
                break
            except OverBudget as exc:
                if refused and exc.wait_s <= self.cfg.wait_in_place_s:
                    await self._wait_in_place(exc.wait_s)  # still first in its line
                    continue
                await self._reschedule(item, exc.wait_s, count_attempt=False, error=None)
                return
            except RateLimited as exc:
                log.info("outbox.rate_limited", item=item.id, retry_after=exc.retry_after)
                if rate_limited(item.destination):  # the whole channel waits, not only this item
                    await self.budget.hold(item.destination, exc.remaining())
                if may_wait and exc.retry_after <= self.cfg.wait_in_place_s:
                    refused = True
                    self.health.progressed()
                    await self._wait_in_place(exc.remaining())
                    continue
                await self._reschedule(item, exc.remaining(), count_attempt=False, error=str(exc))
                return
            except PermanentError as exc:
                await self._dead(item, str(exc), item.attempts + 1)
                return
            except StoreUnavailable:
                raise
            except Exception as exc:  # any failure of a delivery is retried, then dead-lettered
                await self._failed(item, exc)
                return
        await self._mark_done(item.id)
        self.health.delivered()

    async def _wait_in_place(self, seconds: float) -> None:
        """Wait out a refusal holding the item's claim (and so its place in its destination's
        line) but not its delivery slot: its lane takes other work meanwhile. Exactly as long
        as the platform said, from its answer: no claim and no reschedule to add to it."""
        task = asyncio.current_task()
        assert task is not None  # a delivery is a task of its own
        lanes = [lane for lane in (self._people, self._background) if task in lane]
        for lane in lanes:
            lane.discard(task)
        self.wake(people=any(lane is self._people for lane in lanes))  # a slot is free there
        try:
            await asyncio.sleep(seconds)
        finally:
            for lane in lanes:
                lane.add(task)

    async def _failed(self, item: Item, exc: Exception) -> None:
        """A delivery failed: retried after a backoff with jitter, dead-lettered at the end."""
        attempts = item.attempts + 1
        metrics.DELIVERY_FAILURES.labels(kind=item.kind).inc()
        if attempts >= self.cfg.max_attempts:
            await self._dead(item, f"{type(exc).__name__}: {exc}", attempts)
            return
        delay = min(self.cfg.max_backoff_s, self.cfg.base_backoff_s * 2 ** (attempts - 1))
        delay *= random.uniform(0.5, 1.0)
        log.warning("outbox.retry", item=item.id, kind=item.kind, attempt=attempts, error=str(exc))
        await self._reschedule(item, delay, count_attempt=True, error=str(exc))

    async def _mark_done(self, item_id: int) -> None:
        """Mark delivered items done, many in one write: whoever holds the turn writes every
        id waiting, so the others find theirs committed when their turn comes."""
        self._delivered.append(item_id)
        async with self._marking:
            ids, self._delivered = self._delivered, []
            if not ids:
                return
            await self.store.execute(
                update(t.outbox)
                .where(t.outbox.c.id.in_(ids))
                .values(status="done", done_at=utcnow(), locked_until=None, coalesce_key=None)
            )

    async def _reschedule(
        self, item: Item, delay_s: float, *, count_attempt: bool, error: str | None
    ) -> None:
        values: dict[str, Any] = {
            "next_attempt_at": utcnow() + timedelta(seconds=delay_s),
            "locked_until": None,
        }
        if count_attempt:
            values["attempts"] = item.attempts + 1
        if error:
            values["last_error"] = error[:2000]
        await self.store.execute(update(t.outbox).where(t.outbox.c.id == item.id).values(**values))
        self.health.progressed()
        if delay_s < self.cfg.lease_s:  # look again when it is due, not a poll later
            asyncio.get_running_loop().call_later(delay_s, self.wake)

    async def _dead(self, item: Item, error: str, attempts: int | None = None) -> None:
        log.error("outbox.dead", item=item.id, kind=item.kind, dest=item.destination, error=error)
        metrics.DEAD_LETTERS.labels(kind=item.kind).inc()
        async with self.store.write() as conn:
            await conn.execute(
                update(t.outbox)
                .where(t.outbox.c.id == item.id)
                .values(
                    status="dead",
                    attempts=item.attempts if attempts is None else attempts,
                    locked_until=None,
                    coalesce_key=None,
                    last_error=error[:2000],
                    done_at=utcnow(),
                )
            )
        self.health.progressed()
        if self.on_dead is not None:
            await self.on_dead(item, error)


def _take(
    conn: Connection, query: Select[Any], params: dict[str, Any], until: datetime, owner: str
) -> list[Row[Any]]:
    """Lease the items `query` finds to `owner` (one write transaction, one thread hop)."""
    rows = conn.execute(query, params).all()
    if rows:
        conn.execute(
            update(t.outbox)
            .where(t.outbox.c.id.in_([r.id for r in rows]))
            .values(locked_until=until, locked_by=owner)
        )
    return list(rows)


async def counts(conn: AsyncConnection) -> dict[str, Any]:
    """Pending and dead items; `due`: pending ones whose time has come, and `lag_s`: how long
    the oldest of those has waited past its time (the worker's lag)."""
    o = t.outbox.c
    rows = (await conn.execute(select(o.status, func.count()).group_by(o.status))).all()
    by = {r[0]: r[1] for r in rows}
    now = utcnow()
    due, oldest = (
        await conn.execute(
            select(func.count(), func.min(o.next_attempt_at)).where(
                o.status == "pending", o.next_attempt_at <= now
            )
        )
    ).one()
    since = aware(oldest)
    lag = (now - since).total_seconds() if since is not None else 0.0
    return {
        "pending": by.get("pending", 0),
        "failed": by.get("dead", 0),
        "due": int(due),
        "lag_s": round(max(lag, 0.0), 1),
    }
