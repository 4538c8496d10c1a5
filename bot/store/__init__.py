"""The store: one async SQLAlchemy Core engine (aiosqlite or asyncpg), migrated at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import CursorResult, Table, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from bot.errors import StoreUnavailable

_ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
_BACKGROUND: ContextVar[bool] = ContextVar("opsbot_background_write", default=False)


def background_work() -> None:
    """Mark the current task's writes as background (call at the top of a worker task)."""
    _BACKGROUND.set(True)


_BUSY_TIMEOUT_MS = 10_000


def async_url(url: str) -> str:
    """Map the user's URL (sqlite:///x.db, postgresql://...) to its async driver."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


class Store:
    """Owns the engine; `write()` and `read()` hand out transactions.

    On SQLite every write transaction is `BEGIN IMMEDIATE` behind one in-process lock, so
    writers queue instead of failing with SQLITE_BUSY; PostgreSQL relies on its own locking.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._urgent = 0  # foreground writers (webhooks, chat callbacks) waiting or writing
        self._no_urgent = asyncio.Event()
        self._no_urgent.set()

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        full = async_url(url)
        is_sqlite = full.startswith("sqlite")
        kwargs: dict[str, object] = {"pool_pre_ping": not is_sqlite}
        if is_sqlite:
            kwargs["connect_args"] = {"timeout": _BUSY_TIMEOUT_MS / 1000}
        engine = create_async_engine(full, **kwargs)
        if is_sqlite:
            _install_sqlite_hooks(engine)
        store = cls(engine)
        if migrate:
            await store.migrate()
        return store

    async def migrate(self) -> None:
        """Apply Alembic migrations up to head (idempotent)."""
        cfg = AlembicConfig(str(_ALEMBIC_INI))

        def upgrade(sync_conn: object) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(upgrade)
        except (OperationalError, OSError) as exc:
            raise StoreUnavailable(f"cannot migrate the store: {exc}") from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed when the block exits without error.

        On SQLite, background writers (code run under `background_work()`, i.e. the outbox
        worker) let queued foreground writers (a sender waiting for its 2xx) go first: a
        storm delays chat posts, not acknowledgements.
        """
        background = _BACKGROUND.get()
        if self._write_lock is None:
            async with self._translate(), self.engine.begin() as conn:
                yield conn
            return
        if background:
            await self._no_urgent.wait()
        else:
            self._urgent += 1
            self._no_urgent.clear()
        try:
            async with self._write_lock, self._translate():
                eng = self.engine.execution_options(sqlite_immediate=True)
                async with eng.begin() as conn:
                    yield conn
        finally:
            if not background:
                self._urgent -= 1
                if self._urgent == 0:
                    self._no_urgent.set()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._translate(), self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _translate(self) -> AsyncIterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise StoreUnavailable(str(exc.orig or exc)) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(str(exc.orig or exc)) from exc
            raise
        except (OSError, ConnectionError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    def insert_or_ignore(self, table: Table) -> Insert:
        """INSERT ... ON CONFLICT DO NOTHING in this store's dialect (a conflicting row is
        skipped; with RETURNING, no row comes back)."""
        dialect_insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        return dialect_insert(table).on_conflict_do_nothing()

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the statement inserted no row")
    return int(key[0])


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: object, _record: object) -> None:
        dbapi_conn.isolation_level = None  # type: ignore[attr-defined]  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA synchronous=NORMAL",
            f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}",
        ):
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: object) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate")  # type: ignore[attr-defined]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[attr-defined]
