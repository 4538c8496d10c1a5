"""This process among the replicas: an id, a heartbeat row, and which owners are dead.

Every claim (an outbox lease, a running action) names its owner, `Replica.id`
(`<replica_id>/<incarnation>`). An owner is dead when its heartbeat row is gone (a graceful
stop deletes it; a restart under the same `replica_id` deletes its previous incarnation's),
or older than `cluster.dead_after_s`. Staleness is only judged by a replica that has itself
reached the store for that long: after an outage every heartbeat is stale, and the first
replica back must not take work the others are still doing.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Select, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import KeyedColumnElement

from bot.app.config import ClusterConfig
from bot.errors import StoreUnavailable
from bot.incidents.models import utcnow
from bot.store import Store
from bot.store import schema as t

log = structlog.get_logger(__name__)

EVER = datetime(1970, 1, 1, tzinfo=UTC)  # older than any heartbeat


class Replica:
    def __init__(self, store: Store, cfg: ClusterConfig, http_port: int) -> None:
        self.store, self.cfg = store, cfg
        self.name = (cfg.replica_id or f"{socket.gethostname()}:{http_port}")[:80]
        self.id = f"{self.name}/{uuid.uuid4().hex[:8]}"
        self._healthy_since: float | None = None  # monotonic; None while cut off

    def judging(self) -> bool:
        """Whether this replica has seen the store long enough to call a silent peer dead."""
        since = self._healthy_since
        return since is not None and time.monotonic() - since >= self.cfg.dead_after_s

    def missing_owner(self, owner: KeyedColumnElement[str]) -> ColumnElement[bool]:
        """SQL: the owner has no heartbeat row (or none is named)."""
        return ~exists().where(t.replicas.c.id == owner)

    def alive_since(self, now: datetime) -> datetime:
        """The oldest heartbeat that still shows its owner alive: any at all, until this
        replica may judge staleness."""
        if not self.judging():
            return EVER
        return now - timedelta(seconds=self.cfg.dead_after_s)

    def dead_owner(
        self,
        owner: KeyedColumnElement[str],
        alive_since: datetime | ColumnElement[datetime] | None = None,
    ) -> ColumnElement[bool]:
        """SQL: the owner has no heartbeat row as recent as `alive_since` (by default, the
        one `alive_since()` gives now; a bound parameter lets a statement built once serve)."""
        since = self.alive_since(utcnow()) if alive_since is None else alive_since
        return ~exists().where(t.replicas.c.id == owner, t.replicas.c.seen_at >= since)

    async def register(self) -> None:
        """Write this incarnation's heartbeat row; earlier incarnations of this name are dead."""
        now = utcnow()
        async with self.store.write() as conn:
            gone = await conn.execute(delete(t.replicas).where(t.replicas.c.name == self.name))
            await conn.execute(
                insert(t.replicas).values(id=self.id, name=self.name, started_at=now, seen_at=now)
            )
        self._healthy_since = time.monotonic()
        log.info("replica.registered", replica=self.id, replaced=gone.rowcount)

    async def beat(self) -> None:
        """A statement a transaction, each in one thread hop (see `Store.execute`): a storm's
        webhooks never wait for a heartbeat to get its turns on a busy event loop."""
        now = utcnow()
        seen = await self.store.execute(
            update(t.replicas).where(t.replicas.c.id == self.id).values(seen_at=now)
        )
        if seen == 0:  # pruned as dead while we were cut off: we are back
            await self.store.execute(
                insert(t.replicas).values(id=self.id, name=self.name, started_at=now, seen_at=now)
            )

    async def run(self) -> None:
        """Heartbeat until cancelled; a store outage is logged and the beat goes on."""
        while True:
            await asyncio.sleep(self.cfg.heartbeat_s)
            try:
                await self.beat()
            except StoreUnavailable as exc:
                self._healthy_since = None
                log.warning("replica.heartbeat_failed", error=str(exc))
            else:
                if self._healthy_since is None:
                    self._healthy_since = time.monotonic()

    def dead_rows(self) -> Select[Any]:
        """Heartbeat rows of dead replicas (none while this replica may not judge)."""
        return select(t.replicas.c.id).where(t.replicas.c.seen_at < self.alive_since(utcnow()))

    async def forget_dead(self, conn: AsyncConnection) -> None:
        """Drop heartbeat rows of dead replicas (a missing row reads as dead just the same)."""
        await conn.execute(delete(t.replicas).where(t.replicas.c.id.in_(self.dead_rows())))

    async def retire(self) -> None:
        """Graceful stop: without a heartbeat row, what we still hold is recovered at once."""
        try:
            async with self.store.write() as conn:
                await conn.execute(delete(t.replicas).where(t.replicas.c.id == self.id))
        except StoreUnavailable as exc:
            log.warning("replica.retire_failed", error=str(exc))
