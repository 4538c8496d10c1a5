"""The real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) notifying the bot:
alerts posted to its API open one incident for their group; the same alerts ended resolve it."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, free_port, run_bot

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
TOKEN = "am-to-opsbot-token"
DEADLINE_S = 20.0
POLL_S = 0.2

pytestmark = [
    pytest.mark.real_server,
    pytest.mark.skipif(
        ALERTMANAGER is None,
        reason="Alertmanager is not installed (apt-get install prometheus-alertmanager)",
    ),
]


async def poll(what: str, check: Callable[[], Awaitable[Any]]) -> Any:
    """Call `check` until it returns something truthy, failing after DEADLINE_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {DEADLINE_S} s waiting for {what}")
        await asyncio.sleep(POLL_S)


def am_config(bot_url: str) -> str:
    return f"""\
global:
  resolve_timeout: 1m
route:
  receiver: opsbot
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: opsbot
    webhook_configs:
      - url: "{bot_url}/webhooks/alertmanager"
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials: "{TOKEN}"
"""


@pytest.fixture
async def bot(bot_config: Callable[..., Config]) -> AsyncIterator[RunningBot]:
    async with run_bot(bot_config(webhooks={"token": TOKEN})) as running:
        yield running


@pytest.fixture
async def alertmanager(bot: RunningBot, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A real Alertmanager on loopback, clustering off, whose only receiver is the bot."""
    assert ALERTMANAGER is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(am_config(bot.url))
    port = free_port()
    log_path = tmp_path / "alertmanager.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

            async def ready() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"alertmanager exited: {log_path.read_text()}")
                try:
                    return (await client.get("/-/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await poll("alertmanager to be ready", ready)
            yield client
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


def am_alerts(starts_at: datetime, ends_at: datetime | None = None) -> list[dict[str, Any]]:
    """Two alerts of one group (alertname + service), as a Prometheus server posts them."""
    alerts = []
    for instance in ("db-1:9100", "db-2:9100"):
        alert: dict[str, Any] = {
            "labels": {
                "alertname": "DiskAlmostFull",
                "service": "orders-db",
                "severity": "critical",
                "instance": instance,
            },
            "annotations": {"summary": "orders-db disk above 95%"},
            "startsAt": starts_at.isoformat(),
            "generatorURL": "http://prometheus:9090/graph?g0.expr=disk",
        }
        if ends_at is not None:
            alert["endsAt"] = ends_at.isoformat()
        alerts.append(alert)
    return alerts


async def test_alertmanager_group_opens_one_incident_and_resolves_it(
    bot: RunningBot, alertmanager: httpx.AsyncClient
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=5)
    posted = await alertmanager.post("/api/v2/alerts", json=am_alerts(started))
    assert posted.status_code == 200, posted.text

    async def listed() -> list[dict[str, Any]]:
        return (await bot.client.get("/api/incidents")).json()["incidents"]

    async def opened() -> list[dict[str, Any]]:
        found = await listed()
        return found if found and found[0]["alert_count"] == 2 else []

    (inc,) = await poll("one incident with both alerts", opened)
    assert (inc["status"], inc["source"], inc["severity"]) == (
        "triggered",
        "alertmanager",
        "critical",
    )
    assert inc["service"] == "orders-db"
    assert inc["labels"]["alertname"] == "DiskAlmostFull"

    ended = datetime.now(UTC) - timedelta(seconds=10)
    posted = await alertmanager.post("/api/v2/alerts", json=am_alerts(started, ended))
    assert posted.status_code == 200, posted.text

    async def resolved() -> list[dict[str, Any]]:
        found = await listed()
        return found if found and found[0]["status"] == "resolved" else []

    (done,) = await poll("the incident to resolve", resolved)
    assert done["id"] == inc["id"]
    detail = (await bot.client.get(f"/api/incidents/{inc['id']}")).json()
    assert [e["kind"] for e in detail["timeline"] if e["kind"] in ("triggered", "resolved")] == [
        "triggered",
        "resolved",
    ]
