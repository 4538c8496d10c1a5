"""The chaos switch: when on, every LLM call fails, to show the fallback layers live.

Kept in the store so every replica sees it; each replica mirrors it onto its LLM chain.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update

from bot.store import Store
from bot.store import schema as t

KEY = "chaos"


class ChaosSwitch:
    def __init__(self, store: Store, apply: Callable[[bool], None] = lambda _on: None) -> None:
        self.store, self.apply = store, apply
        self.enabled = False

    async def get(self) -> bool:
        async with self.store.read() as conn:
            value = await conn.scalar(select(t.settings.c.value).where(t.settings.c.key == KEY))
        self.enabled = bool(value and value.get("enabled"))
        self.apply(self.enabled)
        return self.enabled

    async def set(self, enabled: bool, actor: str) -> None:
        value = {"enabled": enabled, "by": actor}
        async with self.store.write() as conn:
            done = await conn.execute(
                update(t.settings).where(t.settings.c.key == KEY).values(value=value)
            )
            if done.rowcount == 0:
                await conn.execute(t.settings.insert().values(key=KEY, value=value))
        self.enabled = enabled
        self.apply(enabled)
