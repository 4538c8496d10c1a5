"""Live updates for the console: a small in-process publish/subscribe of JSON events.

With replicas, a `relay` (bot/cluster/notify.py) carries each event to the others, which
`deliver` it to their own subscribers: a console sees what any replica did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

Event = tuple[str, dict[str, Any]]
CLOSED: Event = ("", {})
"""What subscribers receive when the server shuts down: end the stream."""
_QUEUE_SIZE = 256


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self.closed = False
        self.relay: Callable[[str, dict[str, Any]], None] | None = None

    def publish(self, name: str, data: dict[str, Any]) -> None:
        self.deliver(name, data)
        if self.relay is not None:
            self.relay(name, data)

    def deliver(self, name: str, data: dict[str, Any]) -> None:
        """Hand an event to this process's subscribers only (one relayed from elsewhere)."""
        for q in list(self._subscribers):
            self._put(q, (name, data))

    @staticmethod
    def _put(q: asyncio.Queue[Event], event: Event) -> None:
        if q.full():  # a stalled browser tab must not hold the bot back
            q.get_nowait()
        q.put_nowait(event)

    def close(self) -> None:
        """End every stream, so a graceful shutdown need not wait for open browser tabs."""
        self.closed = True
        for q in list(self._subscribers):
            self._put(q, CLOSED)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        q: asyncio.Queue[Event] = asyncio.Queue(_QUEUE_SIZE)
        if self.closed:
            q.put_nowait(CLOSED)
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)
