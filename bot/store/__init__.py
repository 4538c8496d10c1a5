"""The store: one async SQLAlchemy Core engine (aiosqlite or asyncpg), migrated at start-up
(on PostgreSQL under an advisory lock, so replicas starting together migrate once)."""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import structlog
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, CursorResult, Engine, Select, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Insert

from bot.errors import StoreUnavailable

log = structlog.get_logger(__name__)
_ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
_BACKGROUND: ContextVar[bool] = ContextVar("opsbot_background_write", default=False)
P = ParamSpec("P")
T = TypeVar("T")
# PostgreSQL's deadlock_detected and serialization_failure: the transaction is simply re-run
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
TRANSACTION_ATTEMPTS = 5
# A background writer that has waited this long goes before foreground ones (never starved)
BACKGROUND_PATIENCE_S = 0.02


def background_work() -> None:
    """Mark the current task's writes as background (call at the top of a worker task)."""
    _BACKGROUND.set(True)


def foreground_work() -> None:
    """Mark the current task's writes as foreground again (a worker task a person waits on)."""
    _BACKGROUND.set(False)


_BUSY_TIMEOUT_MS = 10_000
MIGRATION_LOCK = 0x6F707362_6F74_0001  # pg advisory lock key: "opsbot" migrations


def dialect_of(conn: Connection | AsyncConnection) -> str:
    return conn.dialect.name


def async_url(url: str) -> str:
    """Map the user's URL (sqlite:///x.db, postgresql://...) to its async driver."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


class WriteSlot:
    """SQLite's one write slot, handed over in priority order: foreground writers (a sender
    waiting for its 2xx) before background ones (the outbox worker), except that a background
    writer that has waited `BACKGROUND_PATIENCE_S` goes next, so a storm delays the worker by
    one turn in a few but never starves it."""

    def __init__(self) -> None:
        self._busy = False
        self._foreground: deque[asyncio.Future[None]] = deque()
        self._background: deque[tuple[float, asyncio.Future[None]]] = deque()

    async def acquire(self, *, background: bool) -> None:
        if not self._busy and not self._foreground and not self._background:
            self._busy = True
            return
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        if background:
            self._background.append((loop.time(), turn))
        else:
            self._foreground.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed the slot as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while True:
            turn = self._next()
            if turn is None:
                self._busy = False
                return
            if not turn.done():  # skip waiters that were cancelled
                turn.set_result(None)
                return

    def _next(self) -> asyncio.Future[None] | None:
        if self._background:
            waited = asyncio.get_running_loop().time() - self._background[0][0]
            if not self._foreground or waited >= BACKGROUND_PATIENCE_S:
                return self._background.popleft()[1]
        return self._foreground.popleft() if self._foreground else None


class Store:
    """Owns the engine; `write()` and `read()` hand out transactions.

    On SQLite every write transaction is `BEGIN IMMEDIATE` behind one in-process lock, so
    writers queue instead of failing with SQLITE_BUSY; PostgreSQL relies on its own locking.
    `transact()` runs plain synchronous Core code as one transaction with one thread hop: on
    SQLite on a dedicated writer thread with its own sqlite3 connection, on PostgreSQL through
    `AsyncConnection.run_sync`.
    """

    def __init__(self, engine: AsyncEngine, sync_engine: Engine | None = None) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._slot = WriteSlot() if self.is_sqlite else None
        self._sync_engine = sync_engine
        self._thread = (
            ThreadPoolExecutor(1, thread_name_prefix="store-writer") if sync_engine else None
        )

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        full = async_url(url)
        is_sqlite = full.startswith("sqlite")
        kwargs: dict[str, object] = {"pool_pre_ping": not is_sqlite}
        if is_sqlite:
            kwargs["connect_args"] = {"timeout": _BUSY_TIMEOUT_MS / 1000}
        engine = create_async_engine(full, **kwargs)
        sync_engine = None
        if is_sqlite:
            _install_sqlite_hooks(engine.sync_engine)
            sync_engine = create_engine(make_url(full).set(drivername="sqlite"), **kwargs)
            _install_sqlite_hooks(sync_engine)
        store = cls(engine, sync_engine)
        if migrate:
            before, after = await store.migrate()
            if before != after:
                log.info("store.migrated", before=before, after=after)
        return store

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def migrate(self) -> tuple[str | None, str | None]:
        """Apply Alembic migrations up to head (idempotent); returns the revisions before and
        after. On PostgreSQL the transaction holds an advisory lock: a replica starting at
        the same moment waits, then finds the schema at head and changes nothing."""
        cfg = AlembicConfig(str(_ALEMBIC_INI))

        def upgrade(sync_conn: Connection) -> tuple[str | None, str | None]:
            before = MigrationContext.configure(sync_conn).get_current_revision()
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")
            return before, MigrationContext.configure(sync_conn).get_current_revision()

        try:
            async with self.engine.begin() as conn:
                if self.is_postgres:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                    )
                return await conn.run_sync(upgrade)
        except (OperationalError, OSError) as exc:
            raise StoreUnavailable(f"cannot migrate the store: {exc}") from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed when the block exits without error.

        On SQLite, background writers (code run under `background_work()`, i.e. the outbox
        worker) let queued foreground writers (a sender waiting for its 2xx) go first: a
        storm delays chat posts, not acknowledgements.
        """
        if self._slot is None:
            async with self._translate(), self.engine.begin() as conn:
                yield conn
            return
        async with self._turn(), self._translate():
            eng = self.engine.execution_options(sqlite_immediate=True)
            async with eng.begin() as conn:
                yield conn

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Hold SQLite's one write slot (foreground writers first, see `WriteSlot`)."""
        assert self._slot is not None
        await self._slot.acquire(background=_BACKGROUND.get())
        try:
            yield
        finally:
            self._slot.release()

    async def transact(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, ...)`, plain synchronous Core, as one write transaction.

        On PostgreSQL a deadlock or serialization failure re-runs it from the start (so `fn`
        must have no effect outside the database); it is never the caller's problem.
        """
        if self._thread is not None and self._sync_engine is not None:
            engine, thread = self._sync_engine, self._thread
            async with self._turn(), self._translate():
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(
                    thread, lambda: _run_immediate(engine, fn, *args, **kwargs)
                )
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                async with self._translate(), self.engine.begin() as conn:
                    return await conn.run_sync(fn, *args, **kwargs)
            except DBAPIError as exc:
                if not must_rerun(exc) or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def execute(self, statement: Executable) -> int:
        """One statement as its own write transaction, in one thread hop (see `transact`);
        returns the rows it matched. On SQLite the write slot is held only while it runs, not
        while the event loop gets round to each step of it."""
        return await self.transact(_rowcount, statement)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._translate(), self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _translate(self) -> AsyncIterator[None]:
        try:
            yield
        except OperationalError as exc:
            if must_rerun(exc):
                raise
            raise StoreUnavailable(str(exc.orig or exc)) from exc
        except DBAPIError as exc:
            if connection_lost(exc):
                raise StoreUnavailable(str(exc.orig or exc)) from exc
            raise
        except (OSError, ConnectionError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    def insert_or_ignore(self, table: Table) -> Insert:
        """INSERT ... ON CONFLICT DO NOTHING in this store's dialect (a conflicting row is
        skipped; with RETURNING, no row comes back)."""
        return insert_or_ignore(self.engine.dialect.name, table)

    async def finds(self, query: Select[Any]) -> bool:
        """Whether `query` matches a row, read without the write slot: a scheduled step that
        usually has nothing to do looks first, so it does not hold up the webhooks' writer."""
        async with self.read() as conn:
            return (await conn.execute(query.limit(1))).first() is not None

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._thread is not None and self._sync_engine is not None:
            self._thread.submit(self._sync_engine.dispose).result()
            self._thread.shutdown()
        await self.engine.dispose()


def connection_lost(exc: DBAPIError) -> bool:
    """The connection to the store failed or went away: invalidated by SQLAlchemy, or what
    SQL calls a connection exception (SQLSTATE class 08, e.g. a server hanging up while the
    connection is being opened, which asyncpg reports as 08003)."""
    return exc.connection_invalidated or str(getattr(exc.orig, "sqlstate", "")).startswith("08")


def must_rerun(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure (PostgreSQL): the whole transaction is re-run."""
    return getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES


@functools.cache  # statements are immutable (.values() and the like return copies)
def insert_or_ignore(dialect: str, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for `dialect` (sqlite or postgresql)."""
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table).on_conflict_do_nothing()


@functools.cache
def upsert(dialect: str, table: Table) -> Any:
    """A dialect INSERT that can take `.on_conflict_do_update(...)` (and `.excluded`)."""
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def _run_immediate(
    engine: Engine, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    with engine.execution_options(sqlite_immediate=True).begin() as conn:
        return fn(conn, *args, **kwargs)


def _rowcount(conn: Connection, statement: Executable) -> int:
    return int(conn.execute(statement).rowcount)


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the statement inserted no row")
    return int(key[0])


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: object, _record: object) -> None:
        dbapi_conn.isolation_level = None  # type: ignore[attr-defined]  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA synchronous=FULL",  # an acknowledged delivery survives power loss
            f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}",
        ):
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: object) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate")  # type: ignore[attr-defined]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[attr-defined]
