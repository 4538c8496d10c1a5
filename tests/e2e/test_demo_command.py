"""`opsbot demo` as a user runs it, without a browser: the first incident opens by itself with
an offline diagnosis quoting demo-shop's logs, "restart it" + Approve really restarts
demo-shop and is verified healthy, and SIGTERM stops the bot and demo-shop."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from bot.app import demo
from tests.fakes.bot_server import free_port
from tests.fakes.demo_service import REPO_ROOT, eventually

FIRST_INCIDENT_TIMEOUT_S = 60.0  # a deadline, not a wait: a loaded CI machine starts slowly
RESTART_TIMEOUT_S = 25.0
EXIT_TIMEOUT_S = 15.0


def shop_pid(directory: Path) -> int:
    return int(json.loads((directory / demo.STATE_FILE).read_text())["pid"])


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def diagnosed_incident(client: httpx.AsyncClient) -> dict[str, Any] | None:
    """The demo's first incident once its diagnosis is in the thread."""
    try:
        listed = (await client.get("/api/incidents")).json()["incidents"]
    except httpx.HTTPError:
        return None  # the bot is still starting
    if not listed:
        return None
    detail = (await client.get(f"/api/incidents/{listed[0]['id']}")).json()
    return detail if any(m["kind"] == "diagnosis" for m in detail["messages"]) else None


async def test_opsbot_demo_from_first_alert_to_verified_restart(tmp_path: Path) -> None:
    port, shop_port = free_port(), free_port()
    workdir = tmp_path / "demo"
    output = tmp_path / "demo.out"
    with output.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "bot", "demo", "--port", str(port), "--shop-port", str(shop_port)),
            *("--dir", str(workdir)),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            incident = await eventually(
                lambda: diagnosed_incident(client), FIRST_INCIDENT_TIMEOUT_S
            )
            assert incident["service"] == "demo-shop"
            assert incident["status"] == "triggered"
            (diagnosis,) = [m["diagnosis"] for m in incident["messages"] if m.get("diagnosis")]
            assert diagnosis["source"] == "offline"
            assert diagnosis["category"] == "memory_leak"
            assert diagnosis["proposed_action"]["action"] == "restart"
            shop_log = (workdir / "demo-shop.log").read_text()
            quotes = [e["quote"] for e in diagnosis["evidence"] if e["tool"] == "logs"]
            assert any("MemoryError" in q or "cache size" in q for q in quotes), quotes
            assert all(q in shop_log for q in quotes), "evidence must be demo-shop's own lines"

            first_pid = shop_pid(workdir)
            incident_url = f"/api/incidents/{incident['id']}"
            said = await client.post(f"{incident_url}/messages", json={"text": "restart it"})
            assert said.status_code == 202, said.text

            async def approve_button() -> str | None:
                messages = (await client.get(incident_url)).json()["messages"]
                ids = [b["action_id"] for m in messages for b in m.get("buttons") or []]
                return next((i for i in ids if i.startswith("approve:")), None)

            action_id = await eventually(approve_button, 15)
            clicked = await client.post(f"{incident_url}/buttons", json={"action_id": action_id})
            assert clicked.status_code == 202, clicked.text

            async def verified() -> dict[str, Any] | None:
                detail = (await client.get(incident_url)).json()
                texts = [m["text"] or "" for m in detail["messages"]]
                return detail if any("verified healthy" in text for text in texts) else None

            final = await eventually(verified, RESTART_TIMEOUT_S)
            assert final["status"] == "resolved"
            new_pid = shop_pid(workdir)
            assert new_pid != first_pid and not running(first_pid), "restart kept the process"
            health = await client.get(f"http://127.0.0.1:{shop_port}/health")
            assert health.status_code == 200, health.text

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT_S) == 0

        async def shop_gone() -> bool:
            return not running(new_pid)

        await eventually(shop_gone, EXIT_TIMEOUT_S)
    except BaseException:
        print(output.read_text())  # the demo's own output, shown with the failure
        raise
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        demo.stop_service(workdir)
