"""The bot is killed (SIGKILL) while a restart runs: after it starts again the thread says the
outcome is unknown, and the restart is never run a second time by itself.

`opsbot run` is a real subprocess here; the test only talks to it over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fakes.bot_server import free_port
from tests.fakes.demo_service import REPO_ROOT, eventually

START_TIMEOUT_S = 60.0
# Records that it ran (and its pid, to clean up), then takes far longer than the test.
SLOW_RESTART = """\
import os, sys, time
open(sys.argv[1], "a").write(f"{os.getpid()}\\n")
time.sleep(60)
"""


async def start_bot(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(config),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=out,
        )


async def kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()


def text_of(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def recorded(path: Path) -> list[str]:
    return text_of(path).split()


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Path]:
    """Where the restart command records each run (its pid); those left sleeping are stopped."""
    path = tmp_path / "runs"
    yield path
    for pid in recorded(path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


async def test_a_crash_mid_restart_is_reported_as_outcome_unknown_and_never_rerun(
    tmp_path: Path, runs: Path
) -> None:
    script = tmp_path / "slow_restart.py"
    script.write_text(SLOW_RESTART)
    port = free_port()
    config = tmp_path / "opsbot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "http": {"port": port},
                "storage": {"url": f"sqlite:///{tmp_path / 'opsbot.db'}"},
                # a short lease: after the restart, the interrupted job is delivered again soon
                "outbox": {"lease_s": 2},
                "services": {
                    "checkout": {
                        "actions": {"restart": {"shell": [sys.executable, str(script), str(runs)]}},
                        "approval": "none",
                    }
                },
            }
        )
    )
    log = tmp_path / "bot.log"
    url = f"http://127.0.0.1:{port}"
    bot = await start_bot(config, log)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:

            async def ready() -> bool:
                assert bot.returncode is None, text_of(log)
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            async def incident() -> dict[str, Any]:
                return (await client.get(f"/api/incidents/{incident_id}")).json()

            await eventually(ready, START_TIMEOUT_S)
            resp = await client.post(
                "/webhooks/generic",
                json={"incident_id": "crash-1", "service": "checkout", "message": "checkout down"},
            )
            (incident_id,) = resp.json()["incidents"]
            resp = await client.post(
                f"/api/incidents/{incident_id}/messages", json={"text": "restart it"}
            )
            assert resp.status_code == 202

            async def running() -> bool:
                actions = (await incident())["actions"]
                return bool(actions) and actions[0]["state"] == "running" and bool(recorded(runs))

            await eventually(running, START_TIMEOUT_S)
            await kill(bot)

            bot = await start_bot(config, log)
            await eventually(ready, START_TIMEOUT_S)

            async def told() -> list[str]:
                said = [m["text"] for m in (await incident())["messages"]]
                return [s for s in said if "outcome unknown" in s]

            async def all_delivered() -> bool:
                return (await client.get("/stats")).json()["outbox"]["pending"] == 0

            (unknown,) = await eventually(told, START_TIMEOUT_S)
            await eventually(all_delivered, START_TIMEOUT_S)

            assert unknown == (
                "⚠️ restart checkout: outcome unknown — the bot stopped while it was running; "
                "check the service before trying again."
            )
            inc = await incident()
            (action,) = inc["actions"]
            assert action["state"] == "unknown"
            assert action["outcome"].startswith("outcome unknown")
            assert inc["status"] == "triggered"
            assert [e["text"] for e in inc["timeline"] if e["kind"] == "action_unknown"] == [
                "restart checkout: outcome unknown"
            ]
            assert len(recorded(runs)) == 1  # ran once, before the crash; never again
    finally:
        await kill(bot)
