"""Actions ("restart it") through the real bot: shell and HTTP executors run for real,
verification by health check, one run per request however people click, and what the next
incident learns.

Also the helpers the other action tests share: open an incident by webhook, speak in its
thread as someone, read what the bot said and what the audit log holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from bot.app.config import Config
from bot.chat.adapters.base import InboundMessage, ThreadRef
from bot.incidents.models import utcnow
from bot.store import schema as t
from tests.fakes.action_servers import RecordingHttp
from tests.fakes.bot_server import RunningBot, free_port, run_bot
from tests.fakes.demo_service import eventually

SLACK_CHANNEL = "C0INCIDENTS"
RAVI = {
    "name": "Ravi Kumar",
    "aliases": ["ravi"],
    "slack": "U0RAVI",
    "roles": ["responder", "approver"],
}
ASHA = {
    "name": "Asha Rao",
    "aliases": ["asha"],
    "slack": "U0ASHA",
    "roles": ["responder", "approver"],
}
MIN = {"name": "Min Lee", "aliases": ["min"], "slack": "U0MIN", "roles": ["responder"]}
PEOPLE = [RAVI, ASHA, MIN]

# The "service": python's http.server on a fixed port. Restarting it stops whatever runs from
# the pid file, waits for the port to be free, and starts a new one in its own session.
RESTART_SCRIPT = """\
import os, signal, socket, subprocess, sys, time
pid_file, port = sys.argv[1], int(sys.argv[2])
try:
    os.kill(int(open(pid_file).read()), signal.SIGTERM)
except (FileNotFoundError, ProcessLookupError, ValueError):
    pass
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        break
    time.sleep(0.05)
proc = subprocess.Popen(
    [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
     "--directory", os.path.dirname(pid_file)],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
)
open(pid_file, "w").write(str(proc.pid))
print(f"started pid {proc.pid}")
"""

# A restart that holds until the test opens the gate (a file appears), then records its run.
GATED_SCRIPT = """\
import os, sys, time
gate, runs = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 20
while not os.path.exists(gate) and time.monotonic() < deadline:
    time.sleep(0.02)
open(runs, "a").write(f"{os.getpid()}\\n")
print("restarted")
"""


# ---- shared helpers -------------------------------------------------------------------------


def service(
    actions_: dict[str, Any], *, approval: str = "none", health_url: str | None = None
) -> dict[str, Any]:
    return {"match": {}, "actions": actions_, "approval": approval, "health_url": health_url}


def python_action(script: Path, *args: str) -> dict[str, Any]:
    return {"shell": [sys.executable, str(script), *args], "timeout_s": 30}


async def open_incident(
    bot: RunningBot,
    svc: str = "checkout",
    *,
    key: str | None = None,
    message: str = "checkout is down",
    logs: list[str] | None = None,
) -> str:
    """Fire a generic-webhook alert and let the bot post and diagnose it."""
    body = {
        "incident_id": key or uuid.uuid4().hex[:8],
        "service": svc,
        "alert_type": "ServiceDown",
        "severity": "critical",
        "message": message,
        "logs": logs or [],
    }
    resp = await bot.client.post("/webhooks/generic", json=body)
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    await bot.settle()
    await link_slack_thread(bot, incident_id)
    return incident_id


async def link_slack_thread(bot: RunningBot, incident_id: str) -> None:
    """The incident's Slack thread, as the Slack adapter records it after posting the root."""
    async with bot.runtime.store.write() as conn:
        await conn.execute(
            insert(t.threads).values(
                incident_id=incident_id,
                platform="slack",
                channel=SLACK_CHANNEL,
                thread_id=slack_ts(incident_id),
                created_at=utcnow(),
            )
        )


def slack_ts(incident_id: str) -> str:
    return f"1700000000.{int(incident_id[:6], 16):06d}"


async def console_says(bot: RunningBot, incident_id: str, text: str) -> None:
    """The local console user (an admin on a loopback-bound bot) types in the thread."""
    resp = await bot.client.post(f"/api/incidents/{incident_id}/messages", json={"text": text})
    assert resp.status_code == 202, resp.text


async def console_clicks(bot: RunningBot, incident_id: str, action_id: str) -> None:
    resp = await bot.client.post(
        f"/api/incidents/{incident_id}/buttons",
        json={"action_id": action_id, "value": action_id.partition(":")[2]},
    )
    assert resp.status_code == 202, resp.text


async def slack_says(
    bot: RunningBot,
    incident_id: str,
    user_id: str,
    text: str,
    *,
    button: str | None = None,
    user_name: str | None = None,
) -> None:
    """A Slack user's message (or button click) in the incident's thread, as the adapter
    hands it to the router."""
    accepted = await bot.runtime.router.accept(
        InboundMessage(
            platform="slack",
            channel=SLACK_CHANNEL,
            user_id=user_id,
            user_name=user_name,
            text=text,
            event_id=f"{SLACK_CHANNEL}:{uuid.uuid4().hex}",
            thread=ThreadRef("slack", SLACK_CHANNEL, slack_ts(incident_id)),
            action=button,
            action_value=button.partition(":")[2] if button else None,
        )
    )
    assert accepted


async def detail(bot: RunningBot, incident_id: str) -> dict[str, Any]:
    resp = await bot.client.get(f"/api/incidents/{incident_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def bot_said(bot: RunningBot, incident_id: str) -> list[str]:
    """Everything the bot has said in the incident's console thread, oldest first."""
    return [
        m["text"] for m in (await detail(bot, incident_id))["messages"] if m["author"] == "opsbot"
    ]


async def bot_says_next(bot: RunningBot, incident_id: str, timeout_s: float = 20.0) -> list[str]:
    """What the bot says in the thread once it has handled everything queued."""
    before = len(await bot_said(bot, incident_id))
    await bot.settle(timeout_s)
    return (await bot_said(bot, incident_id))[before:]


async def prompts(bot: RunningBot, incident_id: str) -> list[dict[str, Any]]:
    """Approval prompts the bot posted (messages with Approve/Deny buttons)."""
    return [
        m
        for m in (await detail(bot, incident_id))["messages"]
        if m["kind"] == "approval"
        or any(b["action_id"].startswith("approve:") for b in m.get("buttons", []))
    ]


async def action_rows(bot: RunningBot, incident_id: str) -> list[dict[str, Any]]:
    return (await detail(bot, incident_id))["actions"]


async def audit_log(bot: RunningBot, incident_id: str | None = None) -> list[tuple[str, ...]]:
    """(actor, action, target, decision, reason) rows, oldest first."""
    q = select(t.audit).order_by(t.audit.c.id)
    if incident_id is not None:
        q = q.where(t.audit.c.incident_id == incident_id)
    async with bot.runtime.store.read() as conn:
        rows = (await conn.execute(q)).all()
    return [(r.actor, r.action, r.target, r.decision, r.reason) for r in rows]


def lines_of(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def restart_script(tmp_path: Path) -> Path:
    path = tmp_path / "restart_service.py"
    path.write_text(RESTART_SCRIPT)
    return path


@pytest.fixture
def gated(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(script, gate file, runs file) of a restart that waits for the gate."""
    path = tmp_path / "gated_restart.py"
    path.write_text(GATED_SCRIPT)
    return path, tmp_path / "gate", tmp_path / "runs"


@pytest.fixture
def service_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the little service runs from; whatever it left running is stopped afterwards."""
    where = tmp_path / "svc"
    where.mkdir()
    (where / "health").write_text("ok\n")
    yield where
    pid_file = where / "pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


# ---- executors for real ---------------------------------------------------------------------


async def test_restart_really_restarts_the_process_and_resolves_when_healthy(
    bot_config: Callable[..., Config], restart_script: Path, service_dir: Path
) -> None:
    port = free_port()
    pid_file = service_dir / "pid"
    cfg = bot_config(
        services={
            "checkout": service(
                {"restart": python_action(restart_script, str(pid_file), str(port))},
                health_url=f"http://127.0.0.1:{port}/health",
            )
        }
    )
    # The service ran, then crashed: nothing answers its health check any more.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(restart_script),
        str(pid_file),
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await proc.wait() == 0
    crashed_pid = int(pid_file.read_text())
    os.kill(crashed_pid, signal.SIGKILL)

    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot)
        await console_says(bot, incident_id, "restart it")
        said = await bot_says_next(bot, incident_id, timeout_s=60)

        new_pid = int(pid_file.read_text())
        assert new_pid != crashed_pid
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
        assert said[0] == "▶️ Restarting checkout (asked by @console)."
        assert said[1].startswith(
            f"✅ restart checkout: started pid {new_pid}\n🩺 Verified healthy after "
        )
        assert said[1].endswith(" s")
        assert said[2].startswith("✅ Resolved by opsbot")
        inc = await detail(bot, incident_id)
        assert inc["status"] == "resolved"
        (row,) = inc["actions"]
        assert (row["state"], row["requested_by"], row["auto"]) == ("succeeded", "console", False)
        assert [e["text"] for e in inc["timeline"] if e["kind"] == "resolved"] == [
            "Resolved by opsbot (restarted and verified healthy)"
        ]
        assert [r[3] for r in await audit_log(bot, incident_id)] == ["approved", "succeeded"]


async def test_a_health_check_that_keeps_failing_is_reported_and_the_incident_stays_open(
    bot_config: Callable[..., Config],
    recording_http: RecordingHttp,
    gated: tuple[Path, Path, Path],
) -> None:
    recording_http.respond("/health", 503, "database unreachable")
    script, gate, runs = gated
    gate.touch()
    cfg = bot_config(
        services={
            "checkout": {
                **service(
                    {"restart": python_action(script, str(gate), str(runs))},
                    health_url=f"{recording_http.url}/health",
                ),
                "verify_timeout_s": 1.0,
            }
        }
    )
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot)
        checked_before = len(recording_http.calls("GET"))
        await console_says(bot, incident_id, "restart it")
        said = await bot_says_next(bot, incident_id)

        assert said[1].startswith("❌ restart checkout: restarted\n⚠️ Still failing after ")
        assert said[1].endswith(": HTTP 503")
        assert len(recording_http.calls("GET")) - checked_before >= 2  # retried, then gave up
        inc = await detail(bot, incident_id)
        assert inc["status"] == "triggered"
        (row,) = inc["actions"]
        assert row["state"] == "failed"
        assert "still failing" in row["outcome"]
        assert (await audit_log(bot, incident_id))[-1][3] == "failed"


async def test_http_action_calls_the_deploy_tool_with_configured_headers_and_body(
    bot_config: Callable[..., Config], recording_http: RecordingHttp
) -> None:
    cfg = bot_config(
        services={
            "checkout": service(
                {
                    "rollback": {
                        "http": {
                            "url": f"{recording_http.url}/api/v1/job/rollback-{{service}}/run",
                            "headers": {"Authorization": "Bearer rundeck-token"},
                            "body": {"options": {"service": "{service}", "incident": "{incident}"}},
                        }
                    }
                }
            )
        }
    )
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot)
        await console_says(bot, incident_id, "roll it back")
        said = await bot_says_next(bot, incident_id)

        (call,) = recording_http.calls("POST")
        assert call.path == "/api/v1/job/rollback-checkout/run"
        assert call.headers["authorization"] == "Bearer rundeck-token"
        assert call.json() == {"options": {"service": "checkout", "incident": incident_id}}
        assert said[1] == (
            "✅ rollback checkout: HTTP 200 OK from 127.0.0.1\n⚠️ No health check configured"
        )
        (row,) = await action_rows(bot, incident_id)
        assert row["state"] == "succeeded"


# ---- one run per request -------------------------------------------------------------------


async def test_a_second_restart_while_one_runs_says_who_asked_and_runs_nothing_more(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    script, gate, runs = gated
    cfg = bot_config(
        services={"checkout": service({"restart": python_action(script, str(gate), str(runs))})},
        people=PEOPLE,
    )
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot)
        await slack_says(bot, incident_id, "U0RAVI", "restart it")
        running = asyncio.create_task(bot.settle(30))

        async def restarting() -> bool:
            return [r["state"] for r in await action_rows(bot, incident_id)] == ["running"]

        # Only watch here: the background settle() is the one worker that runs the restart.
        await eventually(restarting, timeout_s=10)
        await slack_says(bot, incident_id, "U0MIN", "restart it")

        async def refused() -> list[str]:
            return [s for s in await bot_said(bot, incident_id) if s.startswith("⏳")]

        (busy,) = await bot.wait_for(refused, what="the second request to be answered")
        assert busy.startswith("⏳ Already restarting checkout (asked by @ravi ")
        assert busy.endswith(" s ago).")
        gate.touch()
        await running
        await bot.settle()
        assert len(lines_of(runs)) == 1
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["succeeded"]


@pytest.mark.parametrize(
    "where", [("slack", "slack"), ("console", "console"), ("slack", "console")]
)
async def test_a_double_click_on_approve_runs_the_action_once(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path], where: tuple[str, str]
) -> None:
    script, gate, runs = gated
    gate.touch()
    cfg = bot_config(
        services={
            "checkout": service(
                {"restart": python_action(script, str(gate), str(runs))}, approval="approve"
            )
        },
        people=PEOPLE,
    )
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot)
        await slack_says(bot, incident_id, "U0MIN", "restart it")
        await bot.settle()
        (prompt,) = await prompts(bot, incident_id)
        approve = prompt["buttons"][0]["action_id"]
        # Two clicks, two event ids, before the bot handled either; from two threads (Slack and
        # the console) they are even handled side by side.
        for platform in where:
            if platform == "slack":
                await slack_says(bot, incident_id, "U0RAVI", "Approve", button=approve)
            else:
                await console_clicks(bot, incident_id, approve)
        said = await bot_says_next(bot, incident_id)

        assert len(lines_of(runs)) == 1
        (approved,) = [s for s in said if s.startswith("✅ Approved")]
        assert approved in {
            f"✅ Approved by @{who}: restarting checkout…" for who in ("ravi", "console")
        }
        assert any(s.startswith("That restart request is already ") for s in said)
        (row,) = await action_rows(bot, incident_id)
        assert row["state"] == "succeeded"


# ---- learning -------------------------------------------------------------------------------


async def test_the_next_incident_of_the_same_kind_remembers_what_fixed_the_last_one(
    bot_config: Callable[..., Config], restart_script: Path, service_dir: Path
) -> None:
    port = free_port()
    pid_file = service_dir / "pid"
    cfg = bot_config(
        services={
            "checkout": service(
                {"restart": python_action(restart_script, str(pid_file), str(port))},
                health_url=f"http://127.0.0.1:{port}/health",
            )
        }
    )
    async with run_bot(cfg) as bot:
        first = await open_incident(bot, key="first")
        await console_says(bot, first, "restart it")
        await bot.settle(60)
        assert (await detail(bot, first))["status"] == "resolved"

        second = await open_incident(bot, key="second")
        assert second != first
        (diagnosis,) = (await detail(bot, second))["diagnoses"]
        assert diagnosis["past_fixes"] == "last time, restart fixed it (1 of 1 times)"
        assert any(
            "Last time, restart fixed it (1 of 1 times)" in s for s in await bot_said(bot, second)
        )
