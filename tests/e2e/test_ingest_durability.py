"""Group commit keeps "commit before acknowledge": `opsbot run` takes webhooks from many senders
at once and is SIGKILLed at a moment when a batch is committed but not yet answered. Every
acknowledged delivery is in the store; after a restart the senders retry what got no answer
(as Alertmanager does) and each delivery is applied exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_durability import BotProcess, Setup
from tests.fakes.bot_server import free_port
from tests.payloads import alertmanager_notification

SENDERS = 16
GROUPS = 40
NOTIFICATIONS = 400  # 10 per group, each with one more alert than the last
DEADLINE_S = 60.0


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    db = tmp_path / "opsbot.db"
    port = free_port()
    config = tmp_path / "opsbot.yaml"
    config.write_text(
        f"http: {{host: 127.0.0.1, port: {port}}}\nstorage: {{url: 'sqlite:///{db}'}}\n"
    )
    return Setup(config, db, f"http://127.0.0.1:{port}", tmp_path / "opsbot.log")


@pytest.fixture
def processes() -> Iterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for bot in started:
        bot.ensure_dead()


def notification(n: int) -> bytes:
    group, version = n % GROUPS, n // GROUPS
    body = alertmanager_notification(
        {"alertname": "QueueBacklog", "shard": str(group), "severity": "warning"},
        {"summary": f"queue backlog on shard {group}"},
        group=f'{{}}:{{shard="{group}"}}',
        fingerprint=f"fp-{group}-0",
    )
    first = body["alerts"][0]
    body["alerts"] = [{**first, "fingerprint": f"fp-{group}-{k}"} for k in range(version + 1)]
    return json.dumps(body).encode()


def key(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def stored_keys(db: Path) -> set[str]:
    with sqlite3.connect(db, timeout=30) as conn:
        return {r[0] for r in conn.execute("SELECT idem_key FROM deliveries")}


class Senders:
    """Concurrent senders; `acked` holds the deliveries answered 2xx."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: set[str] = set()
        self.todo = list(range(NOTIFICATIONS))

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            await asyncio.gather(*(self._send(client) for _ in range(SENDERS)))

    async def _send(self, client: httpx.AsyncClient) -> None:
        while self.todo:
            body = notification(self.todo.pop(0))
            try:
                resp = await client.post(
                    "/webhooks/alertmanager",
                    content=body,
                    headers={"content-type": "application/json"},
                )
            except httpx.TransportError:
                return  # the bot is gone: this sender stops, its delivery unanswered
            if resp.is_success:
                self.acked.add(key(body))


async def kill_between_commit_and_answer(bot: BotProcess, senders: Senders, db: Path) -> None:
    """Freeze the bot again and again until a delivery is committed that no sender has got an
    answer for yet; then SIGKILL it in that state."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        await asyncio.sleep(0.002)
        bot.proc.send_signal(signal.SIGSTOP)
        if stored_keys(db) - senders.acked:
            bot.kill()
            return
        bot.proc.send_signal(signal.SIGCONT)
    raise AssertionError("never caught a committed but unanswered delivery")


async def test_sigkill_between_commit_and_answer_loses_and_repeats_nothing(
    setup: Setup, processes: list[BotProcess]
) -> None:
    first = BotProcess(setup)
    processes.append(first)
    first.wait_until_up()
    senders = Senders(setup.url)
    sending = asyncio.create_task(senders.run())
    await kill_between_commit_and_answer(first, senders, setup.db)
    await sending

    stored = stored_keys(setup.db)
    assert senders.acked <= stored, "an acknowledged delivery is missing after the crash"
    # (an answer already on the wire when the bot froze still reaches its sender: the deliveries
    # stored but unanswered now are those the kill caught between commit and answer, if any)
    unanswered = {key(notification(n)) for n in range(NOTIFICATIONS)} - senders.acked

    second = BotProcess(setup)
    processes.append(second)
    second.wait_until_up()
    retry = Senders(setup.url)  # Alertmanager re-sends whatever got no 2xx
    retry.todo = [n for n in range(NOTIFICATIONS) if key(notification(n)) not in senders.acked]
    await retry.run()
    second.terminate()

    assert retry.acked == unanswered
    with sqlite3.connect(setup.db) as conn:
        deliveries = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
        incidents = conn.execute("SELECT group_key, alert_count FROM incidents").fetchall()
        alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    assert deliveries == NOTIFICATIONS  # each applied once, none twice
    assert len(incidents) == GROUPS
    versions = NOTIFICATIONS // GROUPS
    assert {count for _, count in incidents} == {versions}
    assert alerts == GROUPS * versions
