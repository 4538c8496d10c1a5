"""One leader among the replicas, for work that must run once in the cluster.

On PostgreSQL the leader is the replica holding a session-level advisory lock on a dedicated
connection: when its process dies the server drops the connection and the lock with it, and
another replica's next attempt (every `cluster.heartbeat_s`) takes over. A leader that loses
its connection steps down before trying again. On SQLite (one process) this process leads.
Scheduled steps run on an APScheduler (3.x) `AsyncIOScheduler`: interval jobs, coalesced, one
instance at a time, added on election and removed (their running steps cancelled) on loss.

The API other features use:

    leader.every("expire-approvals", seconds, step)   # step() runs periodically, on the leader only
    leader.on_change(callback)                        # callback(True) when elected, (False) on loss

`every` is for scheduled steps (approval expiry, purges, escalation, the storm digest);
`on_change` for a long-lived singleton such as a Discord gateway connection. A step must be
idempotent and state-driven: it finds what is due in the store and changes it with conditional
updates (`... WHERE state = 'pending'`), so an old leader finishing a step while the new one
starts cannot apply it twice, and a step missed while nobody led is done by the next one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.app.config import ClusterConfig
from bot.cluster.pg import connect
from bot.errors import StoreUnavailable
from bot.store import Store

log = structlog.get_logger(__name__)
LEADER_LOCK = 0x6F707362_6F74_0002  # pg advisory lock key: the opsbot leader
Step = Callable[[], Awaitable[object]]
# APScheduler logs every run at INFO; our steps log what they do themselves.
logging.getLogger("apscheduler").setLevel(logging.WARNING)


class Leadership:
    def __init__(self, store: Store, cfg: ClusterConfig, replica_id: str) -> None:
        self.store, self.cfg, self.replica_id = store, cfg, replica_id
        self.is_leader = False
        self._steps: list[tuple[str, float, Step]] = []
        self._watchers: list[Callable[[bool], Awaitable[None]]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._conn: asyncpg.Connection | None = None
        # A step late because the loop was busy still runs (once: coalesced), never twice at once.
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def every(self, name: str, seconds: float, step: Step) -> None:
        """Run `step` every `seconds` while this replica leads (register before `run`)."""
        self._steps.append((name, seconds, step))

    def on_change(self, callback: Callable[[bool], Awaitable[None]]) -> None:
        self._watchers.append(callback)

    async def run(self) -> None:
        """Campaign until cancelled; lead while the lock is held."""
        self._scheduler.start()
        try:
            if not self.store.is_postgres:
                await self._set(True)
                await asyncio.Event().wait()
            while True:
                held = await self._hold_lock()
                if held != self.is_leader:
                    await self._set(held)
                await asyncio.sleep(self.cfg.heartbeat_s)
        finally:
            await self._set(False)
            self._scheduler.shutdown(wait=False)
            await self._disconnect()

    async def _hold_lock(self) -> bool:
        """Whether this replica holds the lock now (taking it if free)."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await connect(self.store, self.cfg)
            if self.is_leader:  # the lock lives as long as the session: check the session
                await self._conn.fetchval("SELECT 1", timeout=self.cfg.heartbeat_s)
                return True
            got = await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", LEADER_LOCK, timeout=self.cfg.heartbeat_s
            )
            return bool(got)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if self._conn is not None:  # once per outage, not at every retry
                log.warning("leader.connection_lost", error=str(exc), was_leader=self.is_leader)
            await self._disconnect()
            return False

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()  # never wait on a dead server

    async def _set(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        self.is_leader = leading
        log.info("leader.elected" if leading else "leader.stepped_down", replica=self.replica_id)
        if leading:
            for name, seconds, step in self._steps:
                self._scheduler.add_job(
                    functools.partial(self._run_step, name, step),
                    IntervalTrigger(seconds=seconds, timezone=UTC),
                    id=name,
                    name=name,
                    next_run_time=datetime.now(UTC),  # a new leader catches up at once
                    replace_existing=True,
                )
        else:
            self._scheduler.remove_all_jobs()
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
        for watcher in self._watchers:
            try:
                await watcher(leading)
            except Exception:  # one singleton failing to start must not stop the others
                log.exception("leader.watcher_failed", leading=leading)

    async def _run_step(self, name: str, step: Step) -> None:
        """The scheduler's job: the step in a task of its own, so stepping down cancels it."""
        if not self.is_leader:  # fired just as we stepped down
            return
        task = asyncio.create_task(self._guarded(name, step), name=f"leader:{name}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        await asyncio.wait({task})

    @staticmethod
    async def _guarded(name: str, step: Step) -> None:
        try:
            await step()
        except StoreUnavailable as exc:
            log.warning("leader.step_failed", step=name, error=str(exc))
        except Exception:  # a failing step runs again next time; it must not end the schedule
            log.exception("leader.step_crashed", step=name)
