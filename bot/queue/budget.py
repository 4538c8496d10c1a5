"""Per-destination rate budgets for chat messages, each at its platform's limit: a token bucket
in memory for one process (SQLite), and one row per destination in the database that every
replica draws from (PostgreSQL), so two replicas together post at the platform's rate, not
twice it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import case, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert

from bot.store import Store
from bot.store import schema as t

Limits = Callable[[str], tuple[float, int]]  # a destination's (rate per second, burst)


def flat(rate: float, burst: int) -> Limits:
    """The same limits for every destination."""
    return lambda _: (rate, burst)


class Budget(Protocol):
    """Per-destination rate: `take` returns 0 when a message may go now, else the wait;
    `hold` keeps a destination closed for `seconds` (the platform said 429, Retry-After)."""

    async def take(self, key: str) -> float: ...

    async def hold(self, key: str, seconds: float) -> None: ...


def held_tokens(rate: float, seconds: float) -> float:
    """A bucket level from which the next token is `seconds` away."""
    return 1.0 - rate * seconds


class TokenBucket:
    """Per-destination rate limit: each destination's `rate` tokens a second, up to its
    `burst`."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic):
        self.limits, self.clock = limits, clock
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take a token; returns 0 if granted, else the seconds to wait for one."""
        rate, _ = self.limits(key)
        tokens, now = self._level(key)
        if tokens >= 1:
            self._state[key] = (tokens - 1, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (1 - tokens) / rate

    def hold(self, key: str, seconds: float) -> None:
        """No token for `seconds` from now (a lower level already set is kept)."""
        tokens, now = self._level(key)
        self._state[key] = (min(tokens, held_tokens(self.limits(key)[0], seconds)), now)

    def _level(self, key: str) -> tuple[float, float]:
        rate, burst = self.limits(key)
        now = self.clock()
        tokens, last = self._state.get(key, (float(burst), now))
        return min(float(burst), tokens + (now - last) * rate), now


class LocalBudget:
    """The budget of a single process (SQLite): a token bucket in memory."""

    def __init__(self, limits: Limits) -> None:
        self.bucket = TokenBucket(limits)

    async def take(self, key: str) -> float:
        return self.bucket.take(key)

    async def hold(self, key: str, seconds: float) -> None:
        self.bucket.hold(key, seconds)


class SharedBudget:
    """A token bucket per destination in `rate_budgets`, taken in one atomic upsert."""

    def __init__(
        self, store: Store, limits: Limits, clock: Callable[[], float] = time.time
    ) -> None:
        self.store, self.limits, self.clock = store, limits, clock

    async def take(self, key: str) -> float:
        now, (rate, burst) = self.clock(), self.limits(key)
        b = t.rate_budgets
        first = pg_insert(b).values(destination=key, tokens=burst - 1.0, stamp=now, granted=True)
        refilled = b.c.tokens + (literal(now) - b.c.stamp) * rate
        refilled = case((refilled > burst, float(burst)), else_=refilled)
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
        return 0.0 if granted else (1 - tokens) / rate

    async def hold(self, key: str, seconds: float) -> None:
        now, b = self.clock(), t.rate_budgets
        level = held_tokens(self.limits(key)[0], seconds)
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
