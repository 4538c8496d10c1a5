"""Group commit: webhook handlers hand parsed deliveries to one writer, which applies all that
are waiting in one transaction (a savepoint each), commits once, and only then answers them.
It remembers what it stored, so a sender's repeat is known for a duplicate without a write."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from cachetools import TTLCache
from sqlalchemy import Connection, bindparam, update
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.app.config import Config
from bot.incidents.ingest import IngestResult, Raced, apply_alert_sets
from bot.incidents.lifecycle import clip_key
from bot.incidents.models import utcnow
from bot.store import Store, connection_lost, insert_or_ignore, must_rerun
from bot.store import schema as t
from integrations.alerts import Alert

log = structlog.get_logger(__name__)

MAX_BATCH = 256
REMEMBERED = 50_000  # deliveries: a storm's worth of Alertmanager's repeats and HA twins
IDEM_KEY_WIDTH = int(t.deliveries.c.idem_key.type.length)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook request, parsed and validated: what the writer stores."""

    source: str
    idem_key: str
    body: bytes
    alerts: list[Alert]


class Rejected(Exception):
    """The store refused this delivery alone; the others in its batch were committed."""


Outcome = IngestResult | None | Rejected  # None: a repeat of a stored delivery


class IngestWriter:
    """One writer per process. `submit()` resolves after the COMMIT that holds the delivery:
    with 1 result (applied), None (a duplicate), or raises `Rejected` or the store's error."""

    def __init__(
        self,
        store: Store,
        cfg: Config,
        on_commit: Callable[[list[IngestResult]], Awaitable[None]],
    ) -> None:
        self.store, self.cfg, self.on_commit = store, cfg, on_commit
        self._waiting: list[tuple[Delivery, asyncio.Future[Outcome]]] = []
        self._task: asyncio.Task[None] | None = None
        # never longer than the store keeps the delivery row that makes a repeat a duplicate
        self._stored: TTLCache[tuple[str, str], bool] = TTLCache(
            REMEMBERED, cfg.storage.retention.request_bodies_s
        )

    def stored(self, source: str, idem_key: str) -> bool:
        """This process committed a delivery with this key lately (a repeat is a duplicate)."""
        return (source, idem_key) in self._stored

    def busy(self) -> bool:
        """Deliveries are waiting or being written."""
        return bool(self._waiting) or (self._task is not None and not self._task.done())

    async def submit(self, delivery: Delivery) -> IngestResult | None:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="ingest-writer")
        outcome = await future
        if isinstance(outcome, Rejected):
            raise outcome
        return outcome

    async def _drain(self) -> None:
        """Write batches while deliveries wait; the task ends when none is left."""
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                outcomes = await self.store.transact(
                    apply_batch, self.cfg, [d for d, _ in batch], utcnow()
                )
            except Exception as exc:  # the transaction failed as a whole: tell every sender
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (d, _), outcome in zip(batch, outcomes, strict=True):
                if not isinstance(outcome, Rejected):
                    self._stored[d.source, d.idem_key] = True
            try:
                await self.on_commit([o for o in outcomes if isinstance(o, IngestResult)])
            except Exception:  # committed: its queued jobs are durable, the worker runs them
                log.exception("ingest.after_commit_failed", deliveries=len(batch))
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():  # a sender that hung up is not waiting any more
                    future.set_result(outcome)


def apply_batch(
    conn: Connection, cfg: Config, deliveries: list[Delivery], now: datetime
) -> list[Outcome]:
    """The whole batch as one unit, in a savepoint. Should the store refuse it (one bad
    delivery) or another replica open one of its groups first, each delivery is applied
    alone in a savepoint of its own, so only the bad one fails."""
    try:
        with conn.begin_nested():
            return _apply(conn, cfg, deliveries, now)
    except Exception as exc:  # whatever one delivery caused, the others must not share it
        if _whole_transaction(exc):
            raise
    return [_apply_alone(conn, cfg, d, now) for d in deliveries]


RACE_ATTEMPTS = 3


def _apply_alone(conn: Connection, cfg: Config, d: Delivery, now: datetime) -> Outcome:
    for attempt in range(RACE_ATTEMPTS):
        try:
            with conn.begin_nested():
                return _apply(conn, cfg, [d], now)[0]
        except Raced:
            if attempt == RACE_ATTEMPTS - 1:
                raise
        except Exception as exc:
            if _whole_transaction(exc):
                raise
            reason = getattr(exc, "orig", None) or exc
            log.warning("ingest.rejected", source=d.source, error=str(reason), exc_info=True)
            return Rejected(f"could not store this delivery: {reason}")
    raise AssertionError("unreachable")


def _apply(
    conn: Connection, cfg: Config, deliveries: list[Delivery], now: datetime
) -> list[Outcome]:
    """Record the deliveries (a repeat of a stored one stops there), apply the new ones."""
    keys = [(d.source, clip_key(d.idem_key, IDEM_KEY_WIDTH)) for d in deliveries]
    recorded = conn.execute(
        _record(conn.dialect.name),
        [
            {
                "source": source,
                "idem_key": idem_key,
                "received_at": now,
                "body": d.body.decode("utf-8", "replace"),
                "outcome": "",
            }
            for d, (source, idem_key) in zip(deliveries, keys, strict=True)
        ],
    ).all()
    ids = {(r.source, r.idem_key): r.id for r in recorded}
    fresh: dict[tuple[str, str], int] = {}  # delivery → its position (a twin in the batch: first)
    for i, key in enumerate(keys):
        if key in ids:
            fresh.setdefault(key, i)
    results = apply_alert_sets(conn, cfg, [deliveries[i].alerts for i in fresh.values()], now)
    outcomes: list[Outcome] = [None] * len(deliveries)
    for i, result in zip(fresh.values(), results, strict=True):
        outcomes[i] = result
    if fresh:
        conn.execute(
            _OUTCOME,
            [
                {"delivery_id": ids[key], "outcome": result.outcome}
                for key, result in zip(fresh, results, strict=True)
            ],
        )
    return outcomes


@functools.cache
def _record(dialect: str) -> Any:
    d = t.deliveries
    return insert_or_ignore(dialect, d).returning(d.c.id, d.c.source, d.c.idem_key)


_OUTCOME = (
    update(t.deliveries)
    .where(t.deliveries.c.id == bindparam("delivery_id"))
    .values(outcome=bindparam("outcome"))
)


def _whole_transaction(exc: Exception) -> bool:
    """Errors that are no single delivery's fault: a lost connection, a deadlock or a
    serialization failure (the store re-runs or reports the whole batch); and a race with
    another replica on the batch (applied again one delivery at a time)."""
    if isinstance(exc, Raced):
        return False
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and (connection_lost(exc) or must_rerun(exc))
    )
