"""Per-destination rate budgets for chat messages: a token bucket in memory for one process
(SQLite), and one row per destination in the database that every replica draws from
(PostgreSQL), so two replicas together post at the platform's rate, not twice it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import case, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert

from bot.store import Store
from bot.store import schema as t


class Budget(Protocol):
    """Per-destination rate: `take` returns 0 when a message may go now, else the wait;
    `hold` keeps a destination closed for `seconds` (the platform said 429, Retry-After)."""

    async def take(self, key: str) -> float: ...

    async def hold(self, key: str, seconds: float) -> None: ...


def held_tokens(rate: float, seconds: float) -> float:
    """A bucket level from which the next token is `seconds` away."""
    return 1.0 - rate * seconds


class TokenBucket:
    """Per-destination rate limit: `rate` tokens a second, up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take a token; returns 0 if granted, else the seconds to wait for one."""
        now = self.clock()
        tokens, last = self._state.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._state[key] = (tokens - 1, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (1 - tokens) / self.rate

    def hold(self, key: str, seconds: float) -> None:
        """No token for `seconds` from now (a lower level already set is kept)."""
        now = self.clock()
        tokens, last = self._state.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        self._state[key] = (min(tokens, held_tokens(self.rate, seconds)), now)


class LocalBudget:
    """The budget of a single process (SQLite): a token bucket in memory."""

    def __init__(self, rate: float, burst: int) -> None:
        self.bucket = TokenBucket(rate, burst)

    async def take(self, key: str) -> float:
        return self.bucket.take(key)

    async def hold(self, key: str, seconds: float) -> None:
        self.bucket.hold(key, seconds)


class SharedBudget:
    """A token bucket per destination in `rate_budgets`, taken in one atomic upsert."""

    def __init__(
        self, store: Store, rate: float, burst: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.store, self.rate, self.burst, self.clock = store, rate, burst, clock

    async def take(self, key: str) -> float:
        now = self.clock()
        b = t.rate_budgets
        first = pg_insert(b).values(
            destination=key, tokens=self.burst - 1.0, stamp=now, granted=True
        )
        refilled = b.c.tokens + (literal(now) - b.c.stamp) * self.rate
        refilled = case((refilled > self.burst, float(self.burst)), else_=refilled)
        stmt = first.on_conflict_do_update(
            index_elements=[b.c.destination],
            set_={
                "tokens": case((refilled >= 1, refilled - 1), else_=refilled),
                "stamp": now,
                "granted": refilled >= 1,
            },
        ).returning(b.c.tokens, b.c.granted)
        async with self.store.write() as conn:
            tokens, granted = (await conn.execute(stmt)).one()
        return 0.0 if granted else (1 - tokens) / self.rate

    async def hold(self, key: str, seconds: float) -> None:
        now, b = self.clock(), t.rate_budgets
        level = held_tokens(self.rate, seconds)
        stmt = (
            pg_insert(b)
            .values(destination=key, tokens=level, stamp=now, granted=False)
            .on_conflict_do_update(
                index_elements=[b.c.destination],
                set_={"tokens": level, "stamp": now, "granted": False},
            )
        )
        async with self.store.write() as conn:
            await conn.execute(stmt)
