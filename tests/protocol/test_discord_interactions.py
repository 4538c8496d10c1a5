"""`POST /discord/interactions`: Discord's signed HTTP interactions, verified and committed
before they are answered, against the real bot with the real discord.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.discord_api import INCIDENTS, RAVI, FakeDiscord, discord_settings
from tests.fakes.slack_api import inbound


@pytest.fixture
async def http_bot(
    bot_config: Callable[..., Config], fake_discord: FakeDiscord
) -> AsyncIterator[RunningBot]:
    cfg = bot_config(
        discord=discord_settings(fake_discord, public_key=fake_discord.public_key),
        people=[{"name": "Ravi Kumar", "discord": RAVI, "roles": ["responder"]}],
    )
    async with run_bot(cfg) as running:
        yield running


async def test_a_signed_ping_is_answered_with_pong(
    http_bot: RunningBot, fake_discord: FakeDiscord
) -> None:
    resp = await fake_discord.post_interaction(http_bot.url, fake_discord.ping_payload())
    assert resp.status_code == 200
    assert resp.json() == {"type": 1}


@pytest.mark.parametrize(
    ("how", "kw"),
    [
        ("unsigned", {"signed": False}),
        ("forged", {"key": Ed25519PrivateKey.generate()}),
        ("stale", {"timestamp": int(time.time()) - 3600}),
    ],
)
async def test_unsigned_forged_and_stale_interactions_are_refused(
    http_bot: RunningBot, fake_discord: FakeDiscord, how: str, kw: dict
) -> None:
    payload = fake_discord.slash_payload(
        "incident", {"description": "db down"}, channel_id=INCIDENTS
    )
    resp = await fake_discord.post_interaction(http_bot.url, payload, **kw)
    assert resp.status_code == 401, how
    assert "signature" in resp.json()["error"].lower() or "timestamp" in resp.json()["error"]
    assert await inbound(http_bot) == []  # nothing was committed


async def test_a_signed_but_malformed_body_is_a_400_naming_the_problem(
    http_bot: RunningBot, fake_discord: FakeDiscord
) -> None:
    resp = await fake_discord.post_interaction(http_bot.url, {"type": 2})  # no id
    assert resp.status_code == 400
    assert "interaction" in resp.json()["error"]


async def test_a_command_is_committed_before_its_deferred_answer_and_a_repeat_counts_once(
    http_bot: RunningBot, fake_discord: FakeDiscord
) -> None:
    payload = fake_discord.slash_payload("status", {"incident": "#1"}, channel_id=INCIDENTS)
    first = await fake_discord.post_interaction(http_bot.url, payload)
    again = await fake_discord.post_interaction(http_bot.url, payload)

    # deferred (the answer follows through the webhook), ephemeral: only the asker needs it
    assert first.status_code == again.status_code == 200
    assert first.json() == {"type": 5, "data": {"flags": 64}}
    (msg,) = await inbound(http_bot)
    assert (msg.platform, msg.channel, msg.user_id) == ("discord", INCIDENTS, RAVI)
    assert (msg.command, msg.text) == ("status", "status #1")


async def test_a_danger_button_asks_first_in_an_ephemeral_message(
    http_bot: RunningBot, fake_discord: FakeDiscord
) -> None:
    msg = await fake_discord.say(INCIDENTS, "root stand-in")
    msg.components = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 4, "label": "Restart", "custom_id": "?action:restart|inc1"}
            ],
        }
    ]
    resp = await fake_discord.post_interaction(
        http_bot.url, fake_discord.click_payload(msg, "?action:restart|inc1")
    )
    answer = resp.json()
    assert answer["type"] == 4 and answer["data"]["flags"] == 64
    assert "Restart" in answer["data"]["content"]
    (row,) = answer["data"]["components"]
    assert [b["custom_id"] for b in row["components"]] == ["action:restart|inc1", "cancel|"]
    assert await inbound(http_bot) == []  # nothing reaches the router before the confirmation
