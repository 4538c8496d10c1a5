"""Live updates for the console: a small in-process publish/subscribe of JSON events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

Event = tuple[str, dict[str, Any]]
_QUEUE_SIZE = 256


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def publish(self, name: str, data: dict[str, Any]) -> None:
        for q in list(self._subscribers):
            if q.full():  # a stalled browser tab must not hold the bot back
                q.get_nowait()
            q.put_nowait((name, data))

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        q: asyncio.Queue[Event] = asyncio.Queue(_QUEUE_SIZE)
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)
