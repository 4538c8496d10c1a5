"""Fixture: the real bot (Runtime + FastAPI app) served by uvicorn on 127.0.0.1, per test."""

from __future__ import annotations

import asyncio
import copy
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from bot.app.config import Config
from bot.app.runtime import Runtime
from bot.app.server.app import create_app, server_config
from bot.chat.adapters.base import ChatAdapter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningBot:
    url: str
    runtime: Runtime
    client: httpx.AsyncClient
    app: FastAPI

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Run the outbox until nothing is due (no sleeps: deliver what is ready, repeatedly)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if await self.runtime.worker.run_once() == 0:
                return
        raise AssertionError("outbox did not settle")

    async def wait_for(
        self, predicate: Callable[[], Awaitable[Any]], timeout_s: float = 10.0, what: str = ""
    ) -> Any:
        """Poll `predicate` (delivering due outbox items in between) until it is truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            await self.runtime.worker.run_once()
            value = await predicate()
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}")
            await asyncio.sleep(0.05)


def polled(check: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    """A plain check as the async predicate `RunningBot.wait_for` polls."""

    async def predicate() -> Any:
        return check()

    return predicate


def with_alert(am: dict[str, Any], n: int, status: str = "firing") -> dict[str, Any]:
    """The same group again, with one more alert (another pod) in it."""
    body = copy.deepcopy(am)
    extra = copy.deepcopy(body["alerts"][0])
    extra["labels"]["pod"] = f"checkout-{n}"
    extra["fingerprint"] = f"{n:016x}"
    body["alerts"].append(extra)
    body["status"] = status
    return body


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    data: dict[str, Any] = {"storage": {"url": f"sqlite:///{tmp_path / 'opsbot.db'}"}}
    data.update(overrides)
    return Config.model_validate(data)


@asynccontextmanager
async def run_bot(
    cfg: Config, *, background_worker: bool = False, adapters: Sequence[ChatAdapter] = ()
) -> AsyncIterator[RunningBot]:
    """Serve the bot on a free port, with test `adapters` for platforms it has none for. The
    outbox worker only runs in the background when asked; otherwise tests drive it with
    `settle()`/`wait_for()` so they stay deterministic."""
    port = free_port()
    cfg.http.port = port
    runtime = await Runtime.create(cfg)
    for adapter in adapters:
        runtime.add_adapter(adapter)
    app = create_app(runtime, manage_runtime=False)
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    if background_worker:
        await runtime.start()
    else:
        await runtime.start_adapters()
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        try:
            yield RunningBot(url, runtime, client, app)
        finally:
            runtime.bus.close()  # end open console streams, as `opsbot run` does on SIGTERM
            server.should_exit = True
            await task
            if background_worker:
                await runtime.stop()
            else:
                await runtime.stop_adapters()
                await runtime.store.close()


@pytest.fixture
def bot_config(tmp_path: Path) -> Callable[..., Config]:
    """Build a Config on a per-test SQLite file: `bot_config(services={...}, slack={...})`."""
    return lambda **overrides: make_config(tmp_path, **overrides)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[RunningBot]:
    """The embedded default bot (console only, offline agent) on a per-test database."""
    async with run_bot(make_config(tmp_path)) as running:
        yield running
