"""A crash loses nothing and repeats nothing: `opsbot run` is SIGKILLed while it drains a full
outbound queue, started again, and every queued message reaches its thread exactly once, in
order, including the items the killed process held under lease."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bot.app.config import load_config
from bot.chat.adapters.base import Reply
from bot.incidents import lifecycle
from bot.incidents.ingest import ingest
from bot.store import Store
from integrations.alerts import Alert, AlertStatus, Severity
from tests.fakes.bot_server import free_port

INCIDENTS = 40
REPLIES = 10  # per incident, on top of the root message and the diagnosis
LEASE_S = 3
DEADLINE_S = 90.0
POLL_S = 0.01
KILL_AFTER = INCIDENTS * REPLIES // 5  # replies delivered before the SIGKILL, at least
LATE_KILL = INCIDENTS * REPLIES * 3 // 4  # past this, crash at any moment with a lease


@dataclass
class Setup:
    config: Path
    db: Path
    url: str
    log: Path


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    db = tmp_path / "opsbot.db"
    port = free_port()
    config = tmp_path / "opsbot.yaml"
    config.write_text(
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        f"storage: {{url: 'sqlite:///{db}'}}\n"
        f"outbox: {{lease_s: {LEASE_S}}}\n"
    )
    return Setup(config, db, f"http://127.0.0.1:{port}", tmp_path / "opsbot.log")


def reply_text(incident: int, n: int) -> str:
    return f"update {n:02d} for incident {incident:02d}"


async def _queue_work(setup: Setup) -> None:
    """With no bot running: open incidents and queue their replies, committed to the store."""
    cfg = load_config(setup.config)
    store = await Store.open(cfg.storage.url)
    try:
        for i in range(INCIDENTS):
            alert = Alert(
                source="alertmanager",
                group_key=f"durability-{i}",
                fingerprint=f"fp-{i}",
                status=AlertStatus.FIRING,
                title=f"queue backlog on shard {i}",
                severity=Severity.WARNING,
                starts_at=datetime.now(UTC),
                labels={"alertname": "QueueBacklog", "shard": str(i)},
            )
            async with store.write() as conn:
                (incident_id,) = (await ingest(conn, cfg, [alert])).opened
                inc = await lifecycle.get(conn, incident_id)
                for n in range(REPLIES):
                    await lifecycle.enqueue_reply(conn, cfg, inc, Reply(reply_text(i, n)))
    finally:
        await store.close()


def db_rows(setup: Setup, sql: str) -> list[tuple]:
    with sqlite3.connect(setup.db, timeout=30) as conn:
        return conn.execute(sql).fetchall()


def delivered_replies(setup: Setup) -> int:
    return db_rows(setup, "SELECT count(*) FROM messages WHERE kind = 'info'")[0][0]


def delivered_but_pending(setup: Setup) -> int:
    """Replies already in their thread whose outbox item is still pending."""
    return db_rows(
        setup,
        "SELECT count(*) FROM outbox o JOIN messages m "
        "ON m.incident_id = o.incident_id AND m.text = json_extract(o.payload, '$.reply.text') "
        "WHERE o.kind = 'reply' AND o.status = 'pending'",
    )[0][0]


def leased_items(setup: Setup) -> set[int]:
    """Pending items whose lease, taken by a worker, has not run out."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    rows = db_rows(
        setup,
        "SELECT id FROM outbox WHERE status = 'pending' AND locked_by IS NOT NULL "
        f"AND locked_until > '{now}'",
    )
    return {r[0] for r in rows}


class BotProcess:
    """`opsbot run` as a real child process, its output in a log file."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        with setup.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--config", str(setup.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OPSBOT_LOG_LEVEL": "INFO"},
            )

    def wait_until_up(self) -> None:
        wait_for("the bot to answer /healthz", self._healthy)

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"opsbot exited early:\n{self.setup.log.read_text()}")
        try:
            return httpx.get(f"{self.setup.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def frozen_at_a_bad_moment(self) -> bool:
        """SIGSTOP the bot; keep it frozen (True) if this is a moment worth crashing at.

        Worth it: some replies delivered, some items under lease, and at best a reply already
        in its thread whose outbox item is not yet marked done (the at-least-once window).
        Past LATE_KILL of the replies, any moment with a lease will do.
        """
        self.proc.send_signal(signal.SIGSTOP)
        delivered = delivered_replies(self.setup)
        if (
            delivered >= KILL_AFTER
            and leased_items(self.setup)
            and (delivered >= LATE_KILL or delivered_but_pending(self.setup))
        ):
            return True
        self.proc.send_signal(signal.SIGCONT)
        return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: a graceful stop (uvicorn re-raises the signal once it has shut down)."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        log = self.setup.log.read_text()
        assert code in (0, -signal.SIGTERM), log
        assert "opsbot.stopped" in log, log

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.kill()


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE_S} s waiting for {what}")
        time.sleep(POLL_S)


@pytest.fixture
def bots(setup: Setup) -> Iterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for bot in started:
        bot.ensure_dead()


def test_sigkill_mid_delivery_loses_and_repeats_nothing(
    setup: Setup, bots: list[BotProcess]
) -> None:
    asyncio.run(_queue_work(setup))
    queued = db_rows(setup, "SELECT kind, count(*) FROM outbox GROUP BY kind ORDER BY kind")
    assert dict(queued) == {
        "diagnose": INCIDENTS,
        "post_root": INCIDENTS,
        "reply": INCIDENTS * REPLIES,
    }

    first = BotProcess(setup)
    bots.append(first)
    first.wait_until_up()
    wait_for("a moment to crash", lambda: first.frozen_at_a_bad_moment())
    first.kill()

    left = db_rows(setup, "SELECT count(*) FROM outbox WHERE status = 'pending'")[0][0]
    assert left > 0, "the first process drained everything before it was killed"
    held = leased_items(setup)
    assert held, "no item was under lease when the process died"

    second = BotProcess(setup)
    bots.append(second)
    second.wait_until_up()

    def drained() -> bool:
        return db_rows(setup, "SELECT count(*) FROM outbox WHERE status = 'pending'")[0][0] == 0

    wait_for("the restarted bot to drain the outbox", drained)
    second.terminate()

    statuses = dict(db_rows(setup, "SELECT status, count(*) FROM outbox GROUP BY status"))
    assert set(statuses) == {"done"}, statuses  # nothing left behind, nothing dead-lettered
    held_status = db_rows(
        setup, f"SELECT DISTINCT status FROM outbox WHERE id IN ({','.join(map(str, held))})"
    )
    assert held_status == [("done",)]

    threads = db_rows(setup, "SELECT incident_id, platform FROM threads")
    assert len(threads) == INCIDENTS
    assert Counter(i for i, _ in threads).most_common(1)[0][1] == 1

    messages = db_rows(setup, "SELECT text FROM messages WHERE kind = 'info' ORDER BY id")
    texts = [m[0] for m in messages]
    dupes = [t for t, c in Counter(texts).items() if c > 1]
    assert dupes == [], f"{len(dupes)} replies were delivered twice, e.g. {dupes[:3]}"
    assert sorted(texts) == sorted(
        reply_text(i, n) for i in range(INCIDENTS) for n in range(REPLIES)
    )
    for i in range(INCIDENTS):  # order kept within each thread, across the crash
        mine = [t for t in texts if t.endswith(f"incident {i:02d}")]
        assert mine == [reply_text(i, n) for n in range(REPLIES)]

    diagnoses = db_rows(
        setup, "SELECT incident_id, count(*) FROM messages WHERE kind = 'diagnosis' GROUP BY 1"
    )
    assert len(diagnoses) == INCIDENTS
    assert {c for _, c in diagnoses} == {1}
