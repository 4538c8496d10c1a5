"""The demo-shop service (`python -m bot.app.demo_service`) as a real subprocess on a free port."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.1

T = TypeVar("T")


@dataclass(slots=True)
class DemoShop:
    process: asyncio.subprocess.Process
    url: str
    log_file: Path

    async def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not go; returns the exit code."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float) -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {result!r})")
        await asyncio.sleep(POLL_INTERVAL_S)


def read_log(log_file: Path) -> str:
    return log_file.read_text() if log_file.exists() else ""


async def start_demo_shop(log_file: Path) -> DemoShop:
    """Start demo-shop on a free port and wait until it logs its address."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.app.demo_service",
        "--port",
        "0",
        "--log-file",
        str(log_file),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    started = re.compile(rf"starting pid={process.pid} listening on (http://\S+)")

    async def address() -> str | None:
        if process.returncode is not None:
            raise AssertionError(f"demo-shop exited with {process.returncode} during start-up")
        match = started.search(await asyncio.to_thread(read_log, log_file))
        return match.group(1) if match else None

    try:
        url = await eventually(address, START_TIMEOUT_S)
    except AssertionError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return DemoShop(process, url, log_file)


@pytest.fixture
async def demo_shop(tmp_path: Path) -> AsyncIterator[DemoShop]:
    shop = await start_demo_shop(tmp_path / "demo-shop.log")
    yield shop
    await shop.stop()
