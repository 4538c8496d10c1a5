"""The running bot: store, adapters, router, outbox worker and jobs, wired from the config;
this replica's heartbeat, and the singletons it runs while it leads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy import func, select

from agent.pipeline import DiagnosisPipeline
from agent.redact import Redactor
from bot.app import logs, metrics, stats
from bot.app.chaos import ChaosSwitch
from bot.app.config import Config, ConfigError
from bot.app.secrets import redact_patterns
from bot.app.wiring import pipeline_settings, provider_chain
from bot.chat.adapters import PLATFORMS, AdapterContext, route_problems
from bot.chat.adapters.base import ChatAdapter
from bot.chat.conversation import Conversation
from bot.chat.events import EventBus
from bot.chat.router import Router
from bot.cluster.leader import Leadership
from bot.cluster.notify import NotifyRelay
from bot.cluster.replica import Replica
from bot.incidents import actions, delivery
from bot.incidents.delivery import DeliveryStatus
from bot.incidents.diagnosis import Diagnoser
from bot.incidents.escalation import Escalator
from bot.incidents.ingest import IngestResult
from bot.incidents.memory import StoreDiagnosisCache
from bot.incidents.models import utcnow
from bot.incidents.postmortem import Postmortems
from bot.incidents.tickets import TicketDesk, jira_client
from bot.ingest.writer import IngestWriter
from bot.queue.budget import Budget, LocalBudget, SharedBudget
from bot.queue.outbox import CHAT_KINDS, Handler, Item, OutboxWorker
from bot.queue.outbox import counts as outbox_counts
from bot.store import Store, background_work
from bot.store import schema as t
from bot.store.purge import purge
from integrations.alerts.sns_signature import SnsVerifier

log = structlog.get_logger(__name__)
RELAY_START_S = 10.0


class Runtime:
    """Everything `opsbot run` starts; `start()`/`stop()` bracket its life."""

    def __init__(self, cfg: Config, store: Store) -> None:
        problems = route_problems(cfg)
        if problems:
            raise ConfigError("\n".join(problems))
        self.cfg, self.store = cfg, store
        self.replica = Replica(store, cfg.cluster, cfg.http.port)
        self.leader = Leadership(store, cfg.cluster, self.replica.id)
        self.bus = EventBus()
        # Masks known secret shapes and the config's own secrets in text leaving the bot.
        self.outbound = Redactor(redact_patterns(cfg))
        logs.mask_with(self.outbound)
        self.relay: NotifyRelay | None = None
        if store.is_postgres:  # replicas: console events travel through LISTEN/NOTIFY
            self.relay = NotifyRelay(store, cfg.cluster, self.bus, self.replica.id)
            self.bus.relay = self.relay.send
        self.adapters: dict[str, ChatAdapter] = {}
        self.router = Router(cfg, store, self.adapters)
        self.handlers: dict[str, Handler] = {
            "post_root": self.router.deliver,
            "open_thread": self.router.deliver,
            "storm_digest": self.router.storms.deliver,
            "update_root": self.router.deliver,
            "reply": self.router.deliver,
            "direct": self.router.deliver_direct,
            "inbound": self.router.handle,
        }
        self.chain = provider_chain(cfg.llm)
        self.chaos = ChaosSwitch(store, self._apply_chaos)
        self.pipeline = DiagnosisPipeline(
            self.chain, StoreDiagnosisCache(store), pipeline_settings(cfg)
        )
        self.diagnoser = Diagnoser(cfg, store, self.pipeline, self.router.answer_asked)
        self.conversation = Conversation(cfg, store, self.router, self.chaos, self.chain)
        self.tickets = TicketDesk(cfg, store, self.adapters, jira_client(cfg))
        self.postmortems = Postmortems(cfg, store, self.chain)
        self.handlers.update(
            {
                "diagnose": self.diagnoser.diagnose,
                "question": self.diagnoser.question,
                "action": lambda item: actions.run_job(
                    store, cfg, item, self.scrub, self.replica.id
                ),
                "ticket": self.tickets.file,
                "ticket_comment": self.tickets.comment,
                "postmortem": self.postmortems.write,
            }
        )
        self.worker = OutboxWorker(
            store,
            self.handlers,
            cfg.outbox,
            owner=self.replica.id,
            owners=self.replica,
            budget=self._budget(),
            on_dead=self._on_dead,
        )
        self.router.wake = self.worker.wake
        self.router.spend = self.worker.spend
        self.escalator = Escalator(cfg, store)
        self.escalator.wake = self.worker.wake
        self.handlers["escalate"] = self.escalator.start
        self.ingest = IngestWriter(store, cfg, on_commit=self._ingested)
        self.worker.ingesting = self.ingest.busy
        self.leader.every("recover-dead-replicas", cfg.cluster.tick_s, self.recover)
        self.leader.every("expire-approvals", cfg.cluster.tick_s, self._sweep)
        self.leader.every("purge", cfg.storage.retention.purge_every_s, self._purge)
        self.leader.every("storms", cfg.storm.tick_s, self.router.storms.tick)
        self.router.storms.bus = self.bus
        if cfg.oncall.policies:
            self.leader.every("escalation", cfg.oncall.tick_s, self.escalator.tick)
        trusted = cfg.webhooks.sns_trusted_cert_file
        self.sns_verifier = SnsVerifier(Path(trusted).read_bytes() if trusted else None)
        self.http_mounts: list[Callable[[FastAPI], None]] = []
        self.after_start: list[Callable[[], Coroutine[Any, Any, None]]] = []
        context = AdapterContext(cfg, store, self.bus, self.router.accept, self._on_delivery_status)
        for platform in PLATFORMS:
            if platform.build is not None and platform.enabled(cfg):
                self.add_adapter(platform.build(context))
        self._tasks: list[asyncio.Task[None]] = []
        self._nudges: set[asyncio.Task[int]] = set()

    @classmethod
    async def create(cls, cfg: Config) -> Runtime:
        return cls(cfg, await Store.open(cfg.storage.url, migrate=cfg.storage.migrate_on_start))

    def _budget(self) -> Budget:
        """Replicas share one budget per destination in the database; one process keeps its own."""
        if self.store.is_postgres:
            return SharedBudget(self.store, self.cfg.outbox.limits)
        return LocalBudget(self.cfg.outbox.limits)

    def scrub(self, text: str) -> str:
        return self.outbound.redact(text)

    def _apply_chaos(self, enabled: bool) -> None:
        if self.chain is not None:
            self.chain.chaos = enabled

    async def _ingested(self, results: list[IngestResult]) -> None:
        """After a batch is committed and before it is answered: new and re-opened incidents
        page their escalation's first step now, as they did inside the webhook's transaction
        (the queued job is the durable copy: after a crash the worker runs it)."""
        started = [i for r in results for i in (*r.opened, *r.reopened)]
        if started and self.cfg.oncall.policies:
            await self.worker.run_now("escalate", started)
        if any(r.queued for r in results):  # a storm's repeats queue nothing: no claim to try
            self.worker.wake(people=False)

    def add_adapter(self, adapter: ChatAdapter) -> None:
        """Use `adapter` for its platform (replacing a built one); `mount(app)`, if it has one,
        serves the platform's callbacks on the bot's HTTP server."""
        self.adapters[adapter.platform] = adapter
        mount = getattr(adapter, "mount", None)
        if mount is not None:
            self.http_mounts.append(mount)

    async def _on_dead(self, item: Item, error: str) -> None:
        """A chat message or operator request that will never be answered is a dropped user."""
        if item.kind in CHAT_KINDS or item.kind in ("inbound", "direct"):
            async with self.store.write() as conn:
                await stats.bump(conn, stats.DROPPED)

    async def _on_delivery_status(self, report: DeliveryStatus) -> None:
        """A platform's delivery report; a failed page escalates at once."""
        async with self.store.write() as conn:
            failed = await delivery.record_status(conn, self.cfg, report, self.escalator.clock())
        if failed is not None and self._tasks:  # started: fire the now-due step right here
            # (safe on any replica: a step is claimed by a conditional update)
            task = asyncio.create_task(self.escalator.tick(), name=f"escalate-{failed}")
            self._nudges.add(task)
            task.add_done_callback(self._nudges.discard)

    async def start_adapters(self) -> None:
        """Connect adapters that hold a connection of their own (a socket to the platform);
        one that only the leader may hold (`lead`) follows the leadership. Every platform a
        route names must have an adapter by now."""
        problems = route_problems(self.cfg, set(self.adapters))
        if problems:
            raise ConfigError("\n".join(problems))
        for adapter in self.adapters.values():
            start = getattr(adapter, "start", None)
            if start is not None:
                await start()
            lead = getattr(adapter, "lead", None)  # a connection only one replica may hold
            if lead is not None:
                self.leader.on_change(lead)
                if not self.store.is_postgres:  # one process: it leads from the start
                    await lead(True)

    async def stop_adapters(self) -> None:
        for adapter in self.adapters.values():
            stop = getattr(adapter, "stop", None)
            if stop is not None:
                await stop()

    async def recover(self) -> None:
        """Actions a dead replica left running have an unknown outcome (never re-run); at
        start-up that includes this replica's previous life. Also drops dead heartbeat rows.
        Like every scheduled step, it looks before it takes the write slot (see `Store.finds`)."""
        orphaned = actions.orphaned(self.replica.dead_owner)
        if not await self.store.finds(orphaned) and not await self.store.finds(
            self.replica.dead_rows()
        ):
            return
        async with self.store.write() as conn:
            told = await actions.recover(conn, self.cfg, self.replica.dead_owner)
            await self.replica.forget_dead(conn)
        if told:
            self.worker.wake()

    async def _sweep(self) -> None:
        if not await self.store.finds(actions.overdue_approvals(self.cfg)):
            return
        async with self.store.write() as conn:
            await actions.expire_approvals(conn, self.cfg)
        self.worker.wake()

    async def _purge(self) -> None:
        background_work()
        purged = await purge(self.store, self.cfg.storage.retention, utcnow())
        if purged:
            log.info("store.purged", outbox=purged.outbox, deliveries=purged.deliveries)

    async def start(self) -> None:
        await self.replica.register()
        await self.recover()
        await self.chaos.get()
        await self.start_adapters()
        self._tasks.append(asyncio.create_task(self.replica.run(), name="heartbeat"))
        self._tasks.append(asyncio.create_task(self.leader.run(), name="leader"))
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(), name="events-relay"))
            with contextlib.suppress(TimeoutError):  # serve with live updates when we can
                await asyncio.wait_for(self.relay.listening.wait(), RELAY_START_S)
        self._tasks.append(asyncio.create_task(self.worker.run(), name="outbox-worker"))
        self._tasks.append(asyncio.create_task(self._gauges(), name="gauges"))
        self._tasks += [asyncio.create_task(hook()) for hook in self.after_start]
        log.info(
            "opsbot.started",
            storage=self.store.engine.dialect.name,
            adapters=sorted(self.adapters),
            replica=self.replica.id,
        )

    async def _gauges(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # metrics must never take the bot down
                async with self.store.read() as conn:
                    queue = await outbox_counts(conn)
                    rows = (
                        await conn.execute(
                            select(t.incidents.c.status, func.count()).group_by(
                                t.incidents.c.status
                            )
                        )
                    ).all()
                await self.chaos.get()  # another replica may have flipped it
                metrics.QUEUE_DEPTH.set(queue["pending"])
                metrics.OUTBOX_LAG.set(queue["lag_s"])
                for status, n in rows:
                    metrics.INCIDENTS.labels(status=status).set(n)
            await asyncio.sleep(5)

    async def stop(self) -> None:
        await self.stop_adapters()
        await self.worker.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tasks:  # started: hand what this replica still holds to the others now
            await self.replica.retire()
        await self.store.close()
        log.info("opsbot.stopped")
