"""The running bot: store, adapters, router, outbox worker and jobs, wired from the config."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import structlog
from fastapi import FastAPI
from sqlalchemy import func, select

from bot import metrics, stats
from bot.adapters.base import ChatAdapter
from bot.adapters.console import ConsoleAdapter
from bot.chaos import ChaosSwitch
from bot.config import Config
from bot.events import EventBus
from bot.outbox import CHAT_KINDS, Handler, Item, OutboxWorker
from bot.router import Router
from bot.store import Store
from bot.store import schema as t
from integrations.alerts.sns_signature import SnsVerifier

log = structlog.get_logger(__name__)


class Runtime:
    """Everything `opsbot run` starts; `start()`/`stop()` bracket its life."""

    def __init__(self, cfg: Config, store: Store) -> None:
        self.cfg, self.store = cfg, store
        self.bus = EventBus()
        self.adapters: dict[str, ChatAdapter] = {}
        if cfg.console.enabled:
            self.adapters["console"] = ConsoleAdapter(store, self.bus)
        self.router = Router(cfg, store, self.adapters)
        self.handlers: dict[str, Handler] = {
            "post_root": self.router.deliver,
            "update_root": self.router.deliver,
            "reply": self.router.deliver,
            "direct": self.router.deliver_direct,
            "inbound": self.router.handle,
        }
        self.worker = OutboxWorker(store, self.handlers, cfg.outbox, on_dead=self._on_dead)
        self.router.wake = self.worker.wake
        trusted = cfg.webhooks.sns_trusted_cert_file
        self.sns_verifier = SnsVerifier(Path(trusted).read_bytes() if trusted else None)
        self.chaos = ChaosSwitch(store)
        self.http_mounts: list[Callable[[FastAPI], None]] = []
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def create(cls, cfg: Config) -> Runtime:
        return cls(cfg, await Store.open(cfg.storage.url))

    def add_adapter(self, adapter: ChatAdapter) -> None:
        self.adapters[adapter.platform] = adapter

    async def _on_dead(self, item: Item, error: str) -> None:
        """A chat message or operator request that will never be answered is a dropped user."""
        if item.kind in CHAT_KINDS or item.kind in ("inbound", "direct"):
            async with self.store.write() as conn:
                await stats.bump(conn, stats.DROPPED)

    async def start_adapters(self) -> None:
        """Connect adapters that hold a connection of their own (Slack Socket Mode, Discord)."""
        for adapter in self.adapters.values():
            start = getattr(adapter, "start", None)
            if start is not None:
                await start()

    async def stop_adapters(self) -> None:
        for adapter in self.adapters.values():
            stop = getattr(adapter, "stop", None)
            if stop is not None:
                await stop()

    async def start(self) -> None:
        await self.start_adapters()
        self._tasks.append(asyncio.create_task(self.worker.run(), name="outbox-worker"))
        self._tasks.append(asyncio.create_task(self._gauges(), name="gauges"))
        log.info(
            "opsbot.started", storage=self.store.engine.dialect.name, adapters=sorted(self.adapters)
        )

    async def _gauges(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # metrics must never take the bot down
                async with self.store.read() as conn:
                    pending = await conn.scalar(
                        select(func.count())
                        .select_from(t.outbox)
                        .where(t.outbox.c.status == "pending")
                    )
                    rows = (
                        await conn.execute(
                            select(t.incidents.c.status, func.count()).group_by(
                                t.incidents.c.status
                            )
                        )
                    ).all()
                await self.chaos.get()  # another replica may have flipped it
                metrics.QUEUE_DEPTH.set(pending or 0)
                for status, n in rows:
                    metrics.INCIDENTS.labels(status=status).set(n)
            await asyncio.sleep(5)

    async def stop(self) -> None:
        await self.stop_adapters()
        await self.worker.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
        log.info("opsbot.stopped")
