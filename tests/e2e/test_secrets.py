"""Secrets never leave: a model that quotes a masked secret, and an action that prints its
environment, put no secret in chat, Jira, the postmortem, the store or the logs."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from agent.redact import Redactor
from bot.app import logs
from bot.app.config import Config
from bot.store import schema as t
from tests.e2e.test_actions_flow import bot_says_next, console_says, detail
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.jira_server import FakeJira
from tests.fakes.openai_server import FakeOpenAI, Step, reply, tool_calls

DB_PASSWORD = "Tr0ub4dor-Secret-77"  # in the service's logs, read by the model's tool call
DEPLOY_TOKEN = "dpl-Secret-0042-abcdef"  # in the restart action's own env
BOT_ENV_TOKEN = "xoxb-999999999999-bot-env-secret"  # in the bot's environment only
PLACEHOLDER = re.compile(r"\[REDACTED:[a-z_]+#\d+\]")
PRINT_ENV_AND_FAIL = "import os, sys; print(sorted(os.environ.items())); sys.exit(3)"


def llm(body: dict[str, Any]) -> Step:
    """Diagnosis: read the logs, then quote the masked secret everywhere it can. Postmortem:
    quote it again."""
    system, *rest = [m["content"] or "" for m in body["messages"]]
    seen = "\n".join(rest)  # not the system prompt, which shows a placeholder as an example
    if system.startswith("You write blameless incident postmortems"):
        (masked, *_) = PLACEHOLDER.findall(seen) or ["(none)"]
        return reply(f"## Summary\nThe database password {masked} was in the logs.\n")
    if not any(m["role"] == "tool" for m in body["messages"]):
        return tool_calls(("logs", {}))
    (masked, *_) = PLACEHOLDER.findall(seen)
    line = f"db connect postgres://shop:{masked}@db:5432/shop failed"
    assert line in seen, seen  # what the tool gave the model, as the model would quote it
    return reply(
        {
            "summary": f"checkout cannot log in to its database with {masked}",
            "root_cause": f"The password {masked} was rotated; checkout still uses it.",
            "category": "dependency_down",
            "evidence": [{"tool": "logs", "quote": line.strip()}],
            "checks": [f"try {masked} by hand"],
            "mitigation": f"set the new password in place of {masked}",
            "proposed_action": {"action": "restart", "service": "checkout"},
            "confidence": 0.8,
        }
    )


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.setup("DEBUG", json=True, stream=out)
    yield out
    structlog.reset_defaults()
    logs.mask_with(Redactor())


async def store_text(bot: RunningBot) -> str:
    async with bot.runtime.store.read() as conn:
        rows = [(await conn.execute(select(table))).all() for table in t.metadata.sorted_tables]
    return repr(rows)


def jira_text(fake_jira: FakeJira) -> str:
    return repr(
        [asdict(i) for i in fake_jira.issues]
        + [asdict(c) for c in fake_jira.comments]
        + [asdict(a) for a in fake_jira.attachments]
    )


async def test_a_quoted_secret_and_a_printed_environment_leave_no_trace(
    bot_config: Callable[..., Config],
    fake_openai: FakeOpenAI,
    fake_jira: FakeJira,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    captured_logs: io.StringIO,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_ENV_TOKEN)
    log_file = tmp_path / "checkout.log"
    log_file.write_text(
        "2026-11-25T10:00:01Z INFO GET /cart 200\n"
        f"2026-11-25T10:00:02Z ERROR db connect postgres://shop:{DB_PASSWORD}@db:5432/shop failed\n"
    )
    fake_openai.default = llm
    restart = {
        "shell": [sys.executable, "-c", PRINT_ENV_AND_FAIL],
        "env": {"DEPLOY_TOKEN": DEPLOY_TOKEN},
    }
    cfg = bot_config(
        llm={
            "providers": [
                {"name": "primary", "base_url": fake_openai.base_url, "api_key": "sk-test-0001"}
            ],
            "breaker_failures": 100,
        },
        jira={
            "url": fake_jira.url,
            "username": fake_jira.username,
            "api_token": fake_jira.api_token,
        },
        services={
            "checkout": {
                "match": {"service": "checkout"},
                "logs": {"file": str(log_file)},
                "actions": {"restart": restart},
                "approval": "none",
            }
        },
        http={"public_url": "https://opsbot.example.com"},
    )
    async with run_bot(cfg) as bot:
        resp = await bot.client.post(
            "/webhooks/generic",
            json={"incident_id": "db-1", "service": "checkout", "alert_type": "DbDown"},
        )
        assert resp.status_code == 200, resp.text
        (incident_id,) = resp.json()["incidents"]
        await bot.settle(30)
        (diagnosis,) = (await detail(bot, incident_id))["diagnoses"]
        assert diagnosis["source"] == "live"
        assert PLACEHOLDER.search(diagnosis["summary"]), diagnosis  # the model quoted it

        await console_says(bot, incident_id, "file a jira")
        await console_says(bot, incident_id, "restart it")
        said = await bot_says_next(bot, incident_id, 30)
        (failed,) = [s for s in said if s.startswith("❌ restart checkout")]
        assert "'PATH'" in failed  # the environment was printed and posted
        await console_says(bot, incident_id, "resolved")
        await bot.settle(30)

        inc = await detail(bot, incident_id)
        assert inc["status"] == "resolved" and inc["tickets"][0]["key"]
        postmortem = (await bot.client.get(f"/api/incidents/{incident_id}/postmortem")).text
        assert "## Summary" in postmortem and PLACEHOLDER.search(postmortem)
        places = {
            "chat": json.dumps(inc),
            "jira": jira_text(fake_jira),
            "postmortem": postmortem,
            "store": await store_text(bot),
            "logs": captured_logs.getvalue(),
        }
    assert fake_jira.issues and PLACEHOLDER.search(places["jira"])
    for where, text in places.items():
        for secret in (DB_PASSWORD, DEPLOY_TOKEN, BOT_ENV_TOKEN):
            assert secret not in text, f"{secret} in {where}"
