"""Fixture: real `opsbot run` processes (replicas), each with its own config file, port and log;
tests talk to them over HTTP only, and SIGKILL them to play a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fakes.bot_server import free_port
from tests.fakes.demo_service import REPO_ROOT, eventually

START_TIMEOUT_S = 60.0


@dataclass
class BotProcess:
    name: str
    url: str
    log: Path
    proc: asyncio.subprocess.Process

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no heartbeat goodbye (a crash)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await self.proc.wait()

    async def readyz(self, client: httpx.AsyncClient) -> dict[str, Any] | None:
        assert self.proc.returncode is None, f"{self.name} exited:\n{self.log_text()[-3000:]}"
        try:
            resp = await client.get(f"{self.url}/readyz")
        except httpx.TransportError:
            return None
        return resp.json() if resp.status_code == 200 else None


class BotProcesses:
    """Starts replicas from one base config (a dict); stops every one left at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[BotProcess] = []

    async def start(
        self, name: str, config: dict[str, Any], env: dict[str, str] | None = None
    ) -> BotProcess:
        port = free_port()
        cfg = {**config, "http": {**config.get("http", {}), "port": port}}
        cfg["cluster"] = {**config.get("cluster", {}), "replica_id": name}
        path = self.tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        log = self.tmp_path / f"{name}.log"
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(path),
                cwd=REPO_ROOT,
                stdout=out,
                stderr=out,
                env={**os.environ, **(env or {})},
            )
        bot = BotProcess(name, f"http://127.0.0.1:{port}", log, proc)
        self.started.append(bot)
        return bot

    async def ready(self, *bots: BotProcess, timeout_s: float = START_TIMEOUT_S) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            for bot in bots:

                async def up(bot: BotProcess = bot) -> dict[str, Any] | None:
                    return await bot.readyz(client)

                await eventually(up, timeout_s)

    async def close(self) -> None:
        await asyncio.gather(*(bot.kill() for bot in self.started))


@pytest.fixture
async def bot_processes(tmp_path: Path) -> AsyncIterator[BotProcesses]:
    procs = BotProcesses(tmp_path)
    try:
        yield procs
    finally:
        await procs.close()
