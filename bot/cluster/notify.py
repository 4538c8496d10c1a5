"""Console events across replicas through PostgreSQL LISTEN/NOTIFY.

Each replica publishes its events on one channel (sent in order by one task, on a dedicated
connection that also LISTENs) and delivers the others' events to its own subscribers. An event
too large for a notification travels as `incident` with the incident's id: consoles then
reload that incident. Events published while the connection is down are dropped (a console
reloads what it shows when its stream reconnects); the relay reconnects on its own.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import structlog

from bot.app.config import ClusterConfig
from bot.chat.events import EventBus
from bot.cluster.pg import connect
from bot.store import Store

log = structlog.get_logger(__name__)
CHANNEL = "opsbot_events"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes
_QUEUE_SIZE = 1024


class NotifyRelay:
    def __init__(self, store: Store, cfg: ClusterConfig, bus: EventBus, replica_id: str) -> None:
        self.store, self.cfg, self.bus, self.replica_id = store, cfg, bus, replica_id
        self._out: asyncio.Queue[str] = asyncio.Queue(_QUEUE_SIZE)
        self.listening = asyncio.Event()

    def send(self, name: str, data: dict[str, Any]) -> None:
        """The bus's relay hook: queue the event for the other replicas (never blocks)."""
        payload = self._encode(name, data)
        if self._out.full():
            self._out.get_nowait()  # a stalled connection must not hold the bot back
        self._out.put_nowait(payload)

    def _encode(self, name: str, data: dict[str, Any]) -> str:
        payload = json.dumps({"from": self.replica_id, "name": name, "data": data}, default=str)
        if len(payload.encode()) <= MAX_PAYLOAD:
            return payload
        ref = data.get("incident_id") or data.get("id")
        return json.dumps({"from": self.replica_id, "name": "incident", "data": {"id": ref}})

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if event.get("from") != self.replica_id:
            self.bus.deliver(str(event.get("name")), dict(event.get("data") or {}))

    async def run(self) -> None:
        """Listen and send until cancelled, reconnecting after a lost connection."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self.store, self.cfg)
                await conn.add_listener(CHANNEL, self._received)
                self.listening.set()
                await self._send_loop(conn)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if self.listening.is_set():  # once per outage, not at every retry
                    log.warning("events.relay_lost", error=str(exc))
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(self.cfg.heartbeat_s)

    async def _send_loop(self, conn: asyncpg.Connection) -> None:
        while True:
            try:
                payload = await asyncio.wait_for(self._out.get(), self.cfg.heartbeat_s)
            except TimeoutError:  # idle: make sure the connection (and our LISTEN) is alive
                await conn.fetchval("SELECT 1", timeout=self.cfg.heartbeat_s)
                continue
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
