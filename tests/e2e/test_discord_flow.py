"""End to end on Discord: the real bot and the real discord.py against the fake Discord."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, polled, run_bot, with_alert
from tests.fakes.discord_api import (
    ALERTS,
    INCIDENTS,
    MALLORY,
    RAVI,
    DiscordMessage,
    FakeDiscord,
    discord_settings,
)
from tests.fakes.recorder import Recorder
from tests.fakes.slack_api import inbound


def _config(bot_config: Callable[..., Config], fake: FakeDiscord, **discord: str) -> Config:
    return bot_config(
        discord=discord_settings(fake, **discord),
        routes=[
            {"match": {"severity": "critical"}, "discord": [INCIDENTS]},
            {"match": {}, "discord": [ALERTS]},
        ],
        services={
            "checkout": {
                "match": {"service": "checkout"},
                "actions": {"restart": {"shell": ["true"]}},
            }
        },
        people=[
            {
                "name": "Ravi Kumar",
                "aliases": ["ravi"],
                "discord": RAVI,
                "roles": ["responder", "approver", "admin"],
            }
        ],
        outbox={
            "base_backoff_s": 0.05,
            "max_backoff_s": 0.2,
            "update_coalesce_s": 0,
            "rates": {"discord": {"rate": 1000, "burst": 1000}},
        },
    )


@pytest.fixture
async def discord_bot(
    bot_config: Callable[..., Config], fake_discord: FakeDiscord
) -> AsyncIterator[RunningBot]:
    async with run_bot(_config(bot_config, fake_discord)) as running:
        await fake_discord.wait_ready()
        yield running


def _field(message: DiscordMessage, name: str) -> str:
    (embed,) = message.embeds
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


def _custom_ids(message: DiscordMessage) -> list[str]:
    return [b["custom_id"] for row in message.components for b in row["components"]]


async def _fire(bot: RunningBot, body: dict[str, Any]) -> str:
    resp = await bot.client.post("/webhooks/alertmanager", json=body)
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    return incident_id


async def test_alert_becomes_an_embed_with_a_thread_and_a_diagnosis(
    discord_bot: RunningBot, fake_discord: FakeDiscord, sample_am: dict[str, Any]
) -> None:
    await _fire(discord_bot, sample_am)

    async def diagnosed() -> Any:
        threads = fake_discord.threads()
        return threads and [m for m in fake_discord.in_channel(threads[0]["id"]) if m.embeds]

    await discord_bot.wait_for(diagnosed, what="a diagnosis in the thread")
    (root,) = fake_discord.roots(INCIDENTS)
    print(root.embeds, root.components)
    (thread,) = fake_discord.threads()
    print([(m.content, m.embeds) for m in fake_discord.in_channel(thread["id"])])
    assert thread["id"] == root.id


async def test_restart_it_in_the_thread_asks_approval_then_runs_and_verifies(
    bot_config: Callable[..., Config],
    fake_discord: FakeDiscord,
    recorder: Recorder,
    sample_am: dict[str, Any],
) -> None:
    cfg = _config(bot_config, fake_discord)
    cfg.services["checkout"].health_url = f"{recorder.url}/health"
    async with run_bot(cfg) as bot:
        await fake_discord.wait_ready()
        incident_id = await _fire(bot, sample_am)
        await bot.settle()
        (root,) = fake_discord.roots(INCIDENTS)
        await fake_discord.say(root.id, "restart it")

        async def prompt() -> Any:
            return next((m for m in fake_discord.in_channel(root.id) if m.components), None)

        asked = await bot.wait_for(prompt, what="an approval prompt")
        assert "approv" in asked.content.lower()
        approve = _custom_ids(asked)[0]
        assert approve.startswith("approve:")
        clicked = await fake_discord.click(asked, approve)

        async def verified() -> Any:
            return [m.content for m in fake_discord.in_channel(root.id) if "erified" in m.content]

        (done,) = await bot.wait_for(verified, timeout_s=30, what="the verified result")
        assert done.startswith("✅ restart checkout")
        assert [c["type"] for c in clicked.callbacks] == [6]  # a deferred update, no follow-up
        assert "/health" in recorder.paths()
        inc = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
        assert [a["state"] for a in inc["actions"]] == ["succeeded"]


async def test_a_429_with_retry_after_is_waited_out_and_delivered_once(
    discord_bot: RunningBot, fake_discord: FakeDiscord, sample_am: dict[str, Any]
) -> None:
    fake_discord.fail_next(1, retry_after=0.3, path=f"channels/{INCIDENTS}/messages")
    await _fire(discord_bot, sample_am)
    await discord_bot.settle()

    posts = [r for r in fake_discord.requests if r == ("POST", f"channels/{INCIDENTS}/messages")]
    assert len(posts) == 2  # refused once with retry_after, then sent
    assert len(fake_discord.roots(INCIDENTS)) == 1
    stats = (await discord_bot.client.get("/stats")).json()
    assert stats["outbox"]["failed"] == 0 and stats["user_dropped_count"] == 0


async def test_a_dropped_gateway_resumes_and_nothing_is_lost_or_doubled(
    discord_bot: RunningBot, fake_discord: FakeDiscord, sample_am: dict[str, Any]
) -> None:
    incident_id = await _fire(discord_bot, sample_am)
    await discord_bot.settle()
    (root,) = fake_discord.roots(INCIDENTS)
    adapter = discord_bot.runtime.adapters["discord"]
    await fake_discord.say(root.id, "restart it")
    for _ in range(500):  # committed, and not answered: the outbox is not running
        if await inbound(discord_bot):
            break
        await asyncio.sleep(0.02)

    fake_discord.down = True  # Discord is unreachable: REST and gateway
    fake_discord.replay_overlap = 1  # and on RESUME re-sends "restart it", already seen
    await fake_discord.drop_gateway()
    await discord_bot.wait_for(polled(lambda: not adapter.ready.is_set()), what="disconnect")
    await fake_discord.say(root.id, "status")  # kept by Discord for the resumed session
    await _fire(discord_bot, with_alert(sample_am, 2))  # the root must show 2 alerts
    await discord_bot.settle()  # nothing can be sent: it waits in the outbox
    assert (await discord_bot.client.get("/stats")).json()["outbox"]["pending"] >= 2

    fake_discord.down = False
    await fake_discord.wait_ready(timeout_s=20)

    def said() -> list[DiscordMessage]:
        return [m for m in fake_discord.in_channel(root.id) if m.content]

    async def delivered() -> Any:
        answered = any(m.content.startswith("#1 ") for m in said())
        return answered and _field(root, "Alerts") == "2"

    await discord_bot.wait_for(delivered, timeout_s=20, what="the answers and the root edit")
    await discord_bot.settle()
    assert (fake_discord.identifies, fake_discord.resumes) == (1, 1)
    assert [m.text for m in await inbound(discord_bot)] == ["restart it", "status"]
    assert len([m for m in said() if m.components]) == 1  # one approval prompt
    assert len([m for m in said() if m.content.startswith("#1 ")]) == 1  # one status
    assert len(fake_discord.roots(INCIDENTS)) == 1
    stats = (await discord_bot.client.get("/stats")).json()
    assert (stats["outbox"]["pending"], stats["outbox"]["failed"]) == (0, 0)
    inc = (await discord_bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert [a["state"] for a in inc["actions"]] == ["pending_approval"]


async def test_slash_incident_opens_an_incident_diagnoses_it_and_answers_the_command(
    discord_bot: RunningBot, fake_discord: FakeDiscord
) -> None:
    asked = await fake_discord.slash(
        "incident", {"description": "checkout is slow"}, channel_id=INCIDENTS
    )

    async def diagnosed() -> Any:
        roots = fake_discord.roots(INCIDENTS)
        return roots and [m for m in fake_discord.in_channel(roots[0].id) if m.embeds]

    assert await fake_discord.wait_answered(asked) == {"type": 5, "data": {}}  # deferred
    await discord_bot.wait_for(diagnosed, what="the new incident's diagnosis")
    await discord_bot.settle()
    (answer,) = asked.followups
    assert answer.content.startswith("🆕 Opened #1: checkout is slow")
    (root,) = fake_discord.roots(INCIDENTS)
    assert root.embeds[0]["title"].endswith("#1 checkout is slow")
    (inc,) = (await discord_bot.client.get("/api/incidents")).json()["incidents"]
    assert (inc["short_id"], inc["status"]) == (1, "triggered")


async def test_slash_ack_acknowledges_the_named_incident_and_edits_its_embed(
    discord_bot: RunningBot, fake_discord: FakeDiscord, sample_am: dict[str, Any]
) -> None:
    incident_id = await _fire(discord_bot, sample_am)
    await discord_bot.settle()
    asked = await fake_discord.slash("ack", {"incident": "#1"}, channel_id=ALERTS)
    await fake_discord.wait_answered(asked)

    async def answered() -> Any:
        return asked.followups

    (answer,) = await discord_bot.wait_for(answered, what="the command's answer")
    await discord_bot.settle()
    assert answer.content == "#1 checkout: 👀 Acknowledged by @ravi."  # names the incident
    inc = (await discord_bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert (inc["status"], inc["acknowledged_by"]) == ("acknowledged", "ravi")
    (root,) = fake_discord.roots(INCIDENTS)
    assert _field(root, "Status") == "Acknowledged by ravi"
    assert "ack|" not in " ".join(_custom_ids(root))  # no Acknowledge button any more
    said = [m.content for m in fake_discord.in_channel(root.id)]
    assert "👀 Acknowledged by @ravi." in said


async def test_status_and_stats_answer_only_the_caller_and_chaos_needs_an_admin(
    discord_bot: RunningBot, fake_discord: FakeDiscord, sample_am: dict[str, Any]
) -> None:
    await _fire(discord_bot, sample_am)
    await discord_bot.settle()
    status = await fake_discord.slash("status", {"incident": "#1"}, channel_id=ALERTS)
    chaos = await fake_discord.slash("chaos", {"mode": "on"}, channel_id=ALERTS, user=MALLORY)
    assert await fake_discord.wait_answered(status) == {"type": 5, "data": {"flags": 64}}
    await fake_discord.wait_answered(chaos)
    await discord_bot.settle()

    (answer,) = status.followups
    assert answer.content.startswith("#1 ") and "Triggered" in answer.content
    assert answer.flags & 64 and answer not in fake_discord.in_channel(ALERTS)  # only Ravi
    (refused,) = chaos.followups
    assert "Only admins" in refused.content
    assert (await discord_bot.client.get("/stats")).json()["outbox"]["failed"] == 0
