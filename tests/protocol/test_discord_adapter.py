"""The Discord adapter on the real discord.py against the fake Discord: outbound verbs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.app.config import DiscordConfig
from bot.chat.adapters.base import InboundMessage, Reply, RootView
from bot.chat.adapters.discord import COMMANDS, DiscordAdapter
from integrations.errors import TransientError
from tests.fakes.discord_api import GUILD_ID, INCIDENTS, FakeDiscord, discord_settings


async def _accept(msg: InboundMessage) -> bool:
    return True


def _view(status: str = "triggered") -> RootView:
    return RootView(
        incident_id="inc1",
        short_id=3,
        title="checkout 5xx",
        status=status,
        severity="critical",
        service="checkout",
        labels={},
        started_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        alert_count=1,
        status_line=status.capitalize(),
    )


@pytest.fixture
async def adapter(fake_discord: FakeDiscord) -> AsyncIterator[DiscordAdapter]:
    running = DiscordAdapter(DiscordConfig(**discord_settings(fake_discord)), _accept)
    await running.start()
    await running.lead(True)  # the process leads: it holds the gateway
    await fake_discord.wait_ready()
    await running.ready.wait()
    yield running
    await running.stop()


async def test_slash_commands_are_registered_to_the_guild(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    names = [c["name"] for c in fake_discord.commands[GUILD_ID]]
    assert names == [c["name"] for c in COMMANDS]
    assert {"incident", "ack", "resolve", "status", "stats", "chaos", "oncall"} == set(names)
    assert "global" not in fake_discord.commands


async def test_a_root_posted_again_with_its_key_is_the_same_message_and_thread(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    first = await adapter.post_root(INCIDENTS, _view(), "root-key-1")
    again = await adapter.post_root(INCIDENTS, _view(), "root-key-1")  # a retry after a crash

    assert first == again
    (root,) = fake_discord.roots(INCIDENTS)
    assert root.allowed_mentions == {"parse": []}
    (thread,) = fake_discord.threads()
    assert thread["id"] == root.id == first.thread_id
    assert thread["name"] == "#3 checkout 5xx"


async def test_replies_go_in_the_thread_once_per_key_and_edits_change_the_root(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    ref = await adapter.post_root(INCIDENTS, _view(), "root-key-2")
    reply = Reply("👀 Acknowledged by @ravi.", key="outbox-7")
    first = await adapter.reply(ref, reply)
    assert await adapter.reply(ref, reply) == first  # redelivered: shown once
    assert [m.content for m in fake_discord.in_channel(ref.thread_id)] == [
        "👀 Acknowledged by @ravi."
    ]

    await adapter.update_root(ref, _view("resolved"))
    (root,) = fake_discord.roots(INCIDENTS)
    assert root.edits == 1 and root.embeds[0]["title"].startswith("✅")


async def test_while_the_gateway_is_down_outbound_waits(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    fake_discord.down = True
    await fake_discord.drop_gateway()
    while adapter.ready.is_set():
        await adapter.client.wait_for("disconnect")
    with pytest.raises(TransientError, match="gateway is down"):
        await adapter.post_root(INCIDENTS, _view(), "root-key-3")
    assert fake_discord.roots(INCIDENTS) == []
