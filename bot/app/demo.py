"""`opsbot demo`: the embedded default end to end, with a demo service that can fail.

Starts demo-shop (bot/demo_service.py) as its own process, configures it as service
`demo-shop` with a `restart` action that really restarts that process, switches its memory
leak on, and fires an Alertmanager alert from its own symptoms once its health check fails.
`python -m bot.app.demo restart --dir D` is the restart command the action runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from bot.app.config import Config

log = structlog.get_logger(__name__)
SERVICE = "demo-shop"
STATE_FILE = "demo-shop.json"
START_TIMEOUT_S = 15.0
SYMPTOM_TIMEOUT_S = 90.0
POLL_S = 0.5


def _state(directory: Path) -> dict[str, Any]:
    return json.loads((directory / STATE_FILE).read_text())


def start_service(directory: Path, port: int) -> int:
    """Start demo-shop detached (it outlives a restart command); returns its pid."""
    log_file = directory / "demo-shop.log"
    with open(directory / "demo-shop.stdout", "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot.app.demo_service",
                "--port",
                str(port),
                "--log-file",
                str(log_file),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (directory / STATE_FILE).write_text(json.dumps({"pid": proc.pid, "port": port}))
    return proc.pid


def stop_service(directory: Path) -> None:
    try:
        pid = int(_state(directory)["pid"])
    except (OSError, KeyError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _gone(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Exited (and reaped, when it is our own child: a zombie still answers kill(pid, 0))."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # someone else's zombie (the bot started the first demo-shop) is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def wait_healthy(url: str, timeout_s: float = START_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def restart(directory: Path) -> int:
    """The demo's restart action: stop the process, start a fresh one, wait until it answers."""
    port = int(_state(directory)["port"])
    stop_service(directory)
    pid = start_service(directory, port)
    if not wait_healthy(f"http://127.0.0.1:{port}/health"):
        print(f"demo-shop (pid {pid}) did not come up on port {port}", file=sys.stderr)
        return 1
    print(f"demo-shop restarted: pid {pid} on port {port}")
    return 0


def demo_config(directory: Path, bot_port: int, shop_port: int) -> Config:
    shop = f"http://127.0.0.1:{shop_port}"
    return Config.model_validate(
        {
            "http": {"host": "127.0.0.1", "port": bot_port},
            "storage": {"url": f"sqlite:///{directory / 'opsbot.db'}"},
            "services": {
                SERVICE: {
                    "match": {"service": SERVICE},
                    "health_url": f"{shop}/health",
                    "logs": {"url": f"{shop}/logs/tail"},
                    "runbook": "demo-shop: check /health and /logs/tail; restart clears a leak for now.",
                    "actions": {
                        "restart": {
                            "shell": [
                                sys.executable,
                                "-m",
                                "bot.app.demo",
                                "restart",
                                "--dir",
                                str(directory),
                            ],
                            "timeout_s": 30,
                            # the same code as this bot, whichever checkout or install it is
                            "env": {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                        }
                    },
                    "approval": "approve",
                }
            },
        }
    )


def _alert(reason: str, shop_url: str) -> dict[str, object]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    labels = {
        "alertname": "DemoShopUnhealthy",
        "service": SERVICE,
        "severity": "critical",
        "env": "demo",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DemoShopUnhealthy", service="demo-shop"}',
        "status": "firing",
        "receiver": "opsbot",
        "groupLabels": {"alertname": "DemoShopUnhealthy"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://opsbot-demo",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": "demo-shop health check failing",
                    "description": f"GET {shop_url}/health answers 503: {reason}",
                },
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"{shop_url}/metrics",
                "fingerprint": "d3m05h0p0000a1e7",
            }
        ],
    }


async def fire_first_alert(bot_url: str, shop_url: str) -> None:
    """Switch the leak on and alert, like a Prometheus rule, once the health check fails."""
    async with httpx.AsyncClient(timeout=5) as client:
        await client.post(f"{shop_url}/faults/memory_leak", json={"enabled": True})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SYMPTOM_TIMEOUT_S
        while loop.time() < deadline:
            try:
                health = await client.get(f"{shop_url}/health")
            except httpx.HTTPError as exc:
                reason = f"unreachable: {exc}"
                break
            if health.status_code != 200:
                reason = health.json().get("reason", health.text)
                break
            await asyncio.sleep(POLL_S)
        else:
            reason = "still healthy after the leak was switched on"
        await client.post(f"{bot_url}/webhooks/alertmanager", json=_alert(reason, shop_url))
    print(f"opsbot demo: demo-shop is failing ({reason}); the alert is in the console.", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.app.demo")
    parser.add_argument("command", choices=["restart"])
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    raise SystemExit(restart(args.dir))


if __name__ == "__main__":
    main()
