"""Postmortems on resolution through the real bot: the Markdown served by the API and the CLI,
the summary in the thread, the comment and attachment on the incident's Jira issue, and the
LLM-written version with the template as its fallback."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.jira_server import FakeJira, FakeUser
from tests.fakes.openai_server import Fail, FakeOpenAI, Reply, Step

OOM = "java.lang.OutOfMemoryError: Java heap space"
PUBLIC_URL = "https://opsbot.example.com"
POSTMORTEM_PROMPT = "You write blameless incident postmortems"
SECTIONS = (
    "## Summary",
    "## Impact",
    "## Timeline",
    "## Root cause",
    "## Evidence",
    "## Actions taken",
    "## What fixed it",
    "## Follow-ups",
)
LLM_POSTMORTEM = """# Checkout ran out of memory

## Summary
Checkout leaked memory until the JVM failed with OutOfMemoryError.

## Impact
Checkout answered 5xx for a few minutes.

## Timeline
- Triggered, diagnosed offline, resolved by the source.

## Root cause
A memory leak.

## Evidence
- java.lang.OutOfMemoryError: Java heap space

## Actions taken
- none

## What fixed it
unknown

## Follow-ups
- Find what is retained.
"""


def alert(status: str = "firing") -> dict[str, Any]:
    return {
        "incident_id": "checkout-oom",
        "service": "checkout",
        "alert_type": "HighErrorRate",
        "severity": "critical",
        "status": status,
        "message": "checkout 5xx above 5%",
        "logs": ["GET /cart 500", OOM, "GET /cart 500"],
    }


async def post_alert(bot: RunningBot, status: str = "firing") -> str:
    resp = await bot.client.post("/webhooks/generic", json=alert(status))
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    return incident_id


async def detail(bot: RunningBot, incident_id: str) -> dict[str, Any]:
    resp = await bot.client.get(f"/api/incidents/{incident_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def say(bot: RunningBot, incident_id: str, text: str) -> None:
    resp = await bot.client.post(f"/api/incidents/{incident_id}/messages", json={"text": text})
    assert resp.status_code == 202, resp.text


async def wait_detail(
    bot: RunningBot, incident_id: str, check: Callable[[dict[str, Any]], Any], what: str
) -> Any:
    async def ready() -> Any:
        return check(await detail(bot, incident_id))

    return await bot.wait_for(ready, what=what)


async def open_diagnosed(bot: RunningBot) -> str:
    incident_id = await post_alert(bot)
    await wait_detail(bot, incident_id, lambda d: d["diagnoses"], "the diagnosis")
    return incident_id


async def postmortem(bot: RunningBot, incident_id: str) -> str:
    async def served() -> str | None:
        resp = await bot.client.get(f"/api/incidents/{incident_id}/postmortem")
        return resp.text if resp.status_code == 200 else None

    return await bot.wait_for(served, what="the postmortem")


def said(inc: dict[str, Any], needle: str) -> list[str]:
    return [m["text"] for m in inc["messages"] if m["author"] == "opsbot" and needle in m["text"]]


def section(markdown: str, title: str) -> str:
    """The body of one `## title` section."""
    after = markdown.split(f"## {title}\n", 1)[1]
    return after.split("\n## ", 1)[0]


async def cli_postmortem(cfg: Config, tmp_path: Path, ref: str) -> str:
    config = tmp_path / "opsbot.yaml"
    config.write_text(f'storage: {{url: "{cfg.storage.url}"}}\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "postmortem",
        ref,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_postmortem_of_a_resolved_incident_with_an_action_and_a_ticket(
    bot_config: Callable[..., Config], fake_jira: FakeJira, tmp_path: Path
) -> None:
    ravi = FakeUser("ravi.kumar", "Ravi Kumar")
    fake_jira.users.append(ravi)
    cfg = bot_config(
        http={"public_url": PUBLIC_URL},
        outbox={"base_backoff_s": 0.05},
        jira={
            "url": fake_jira.url,
            "username": fake_jira.username,
            "api_token": fake_jira.api_token,
            "project": "OPS",
        },
        people=[{"name": "Ravi Kumar", "aliases": ["ravi"], "jira": ravi.account_id}],
        services={
            "checkout": {
                "match": {"service": "checkout"},
                "actions": {"restart": {"shell": [sys.executable, "-c", "print('restarted')"]}},
                "approval": "none",
            }
        },
    )
    async with run_bot(cfg) as bot:
        incident_id = await open_diagnosed(bot)
        await say(bot, incident_id, "file a Jira for Ravi")
        (key,) = await wait_detail(
            bot, incident_id, lambda d: [tk["key"] for tk in d["tickets"] if tk["key"]], "a ticket"
        )
        await say(bot, incident_id, "restart it")
        await wait_detail(
            bot,
            incident_id,
            lambda d: [a for a in d["actions"] if a["state"] == "succeeded"],
            "the restart",
        )
        # A failed upload is retried on its own: the comment is not posted twice.
        fake_jira.fail_next(503, path=f"/rest/api/2/issue/{key}/attachments")
        await say(bot, incident_id, "resolve")
        markdown = await postmortem(bot, incident_id)
        inc = await wait_detail(
            bot, incident_id, lambda d: said(d, "Postmortem ready") and d, "the announcement"
        )

        assert markdown.startswith("# Postmortem: #1 checkout 5xx above 5%")
        assert [line for line in markdown.splitlines() if line.startswith("## ")] == list(SECTIONS)
        assert "memory leak" in section(markdown, "Summary")
        impact = section(markdown, "Impact")
        assert "checkout" in impact and "critical" in impact
        assert f"Window: {inc['created_at']} → {inc['resolved_at']}" in impact
        timeline = section(markdown, "Timeline")
        for text in (
            "Triggered: checkout 5xx above 5%",
            "Ticket requested by console",
            f"Created {key}, assigned to Ravi Kumar",
            "restart checkout requested",
            "Resolved by console",
        ):
            assert text in timeline, text
        assert "memory_leak" in section(markdown, "Root cause")
        assert OOM in section(markdown, "Evidence")
        actions = section(markdown, "Actions taken")
        assert "restart checkout — succeeded, asked by console" in actions
        assert "restarted" in actions  # the outcome
        assert section(markdown, "What fixed it").startswith("restart of checkout")
        assert f"Ticket {key}: {fake_jira.url}/browse/{key}" in section(markdown, "Follow-ups")

        link = f"{PUBLIC_URL}/api/incidents/{incident_id}/postmortem"
        (announced,) = said(inc, "Postmortem ready")
        assert "(offline)" in announced and link in announced
        assert "memory leak" in announced and "restart of checkout" in announced

        async def on_the_issue() -> bool:
            return bool(fake_jira.comments and fake_jira.attachments)

        await bot.wait_for(on_the_issue, what="the comment and attachment on the issue")
        (comment,) = fake_jira.comments
        assert comment.issue_key == key
        assert "Resolved by console" in comment.body and link in comment.body
        (attachment,) = fake_jira.attachments
        assert (attachment.issue_key, attachment.filename) == (key, "postmortem-1.md")
        assert attachment.content.decode() == markdown

        assert await cli_postmortem(cfg, tmp_path, str(inc["short_id"])) == markdown


def scripted_llm(postmortem_step: Step) -> Callable[[dict[str, Any]], Step]:
    """The provider answers the postmortem request with `postmortem_step`; anything else
    (the diagnosis) fails, so the incident is diagnosed offline."""

    def answer(body: dict[str, Any]) -> Step:
        system = body["messages"][0]["content"]
        return postmortem_step if system.startswith(POSTMORTEM_PROMPT) else Fail(500)

    return answer


@pytest.mark.parametrize(
    ("step", "source"),
    [(Reply(LLM_POSTMORTEM), "live"), (Fail(503), "offline")],
    ids=["llm-answers", "llm-fails"],
)
async def test_postmortem_by_the_llm_with_the_template_as_fallback(
    bot_config: Callable[..., Config], fake_openai: FakeOpenAI, step: Step, source: str
) -> None:
    fake_openai.default = scripted_llm(step)
    cfg = bot_config(
        llm={
            "providers": [
                {
                    "name": "primary",
                    "base_url": fake_openai.base_url,
                    "api_key": "sk-test",
                    "model": "fake-model",
                    "timeout_s": 5,
                }
            ],
            "breaker_failures": 100,
        },
    )
    async with run_bot(cfg) as bot:
        incident_id = await open_diagnosed(bot)
        await post_alert(bot, "resolved")
        markdown = await postmortem(bot, incident_id)
        inc = await wait_detail(
            bot, incident_id, lambda d: said(d, "Postmortem ready") and d, "the announcement"
        )

        (announced,) = said(inc, "Postmortem ready")
        assert f"({source})" in announced
        asked = [
            r
            for r in fake_openai.requests
            if r["messages"][0]["content"].startswith(POSTMORTEM_PROMPT)
        ]
        assert len(asked) == 1
        record = asked[0]["messages"][1]["content"]
        assert OOM in record and "Resolved by generic" in record  # the facts it was given
        if source == "live":
            assert markdown == LLM_POSTMORTEM
        else:
            assert markdown.startswith("# Postmortem: #1 checkout 5xx above 5%")
            assert "Resolved by generic" in section(markdown, "Timeline")
            assert OOM in section(markdown, "Evidence")
