"""Slack Socket Mode: the real slack_sdk client connects to the fake's WebSocket server, which
speaks Slack's envelope protocol (`hello`, envelopes, acks by `envelope_id`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.app.config import Config
from bot.chat.adapters.base import ThreadRef
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.slack_api import (
    APP_TOKEN,
    FakeSlack,
    block_actions,
    event_callback,
    inbound,
    message_event,
    slack_settings,
    slash_command,
)

CHANNEL, ROOT = "C0INCIDENTS", "1700000000.000100"


@pytest.fixture
async def socket_bot(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> AsyncIterator[RunningBot]:
    """A bot with only an app token for inbound: no signing secret, so no HTTP endpoint."""
    settings = slack_settings(fake_slack, app_token=APP_TOKEN, signing_secret="")
    async with run_bot(bot_config(slack=settings)) as running:
        await fake_slack.wait_connected()
        yield running


async def test_connects_with_the_app_token(socket_bot: RunningBot, fake_slack: FakeSlack) -> None:
    (opened,) = fake_slack.calls("apps.connections.open")
    assert opened.params == {}  # the app token travels in the Authorization header
    assert fake_slack.connections == 1
    resp = await socket_bot.client.post("/slack/events", json={"type": "url_verification"})
    assert resp.status_code == 404  # Socket Mode only: nothing to verify HTTP requests with


async def test_event_is_committed_before_the_ack_and_retries_count_once(
    socket_bot: RunningBot, fake_slack: FakeSlack
) -> None:
    event = message_event("scale it to 6", channel=CHANNEL, ts="1700000001.000200", thread_ts=ROOT)
    payload = event_callback(event, event_id="Ev0SOCKET1")
    envelope = await fake_slack.send_envelope("events_api", payload)
    ack = await fake_slack.wait_ack(envelope)
    assert ack == {"envelope_id": envelope}
    # acknowledged means committed: no waiting between the ack and the store
    (msg,) = await inbound(socket_bot)
    assert (msg.text, msg.thread) == ("scale it to 6", ThreadRef("slack", CHANNEL, ROOT))

    again = await fake_slack.send_envelope(
        "events_api", payload, retry_attempt=1, retry_reason="timeout"
    )
    await fake_slack.wait_ack(again)
    assert len(await inbound(socket_bot)) == 1


async def test_button_click_over_the_socket(socket_bot: RunningBot, fake_slack: FakeSlack) -> None:
    payload = block_actions("resolve", "inc-1", channel=CHANNEL, message_ts=ROOT, label="Resolve")
    await fake_slack.wait_ack(await fake_slack.send_envelope("interactive", payload))
    (msg,) = await inbound(socket_bot)
    assert (msg.action, msg.action_value) == ("resolve", "inc-1")
    assert msg.thread == ThreadRef("slack", CHANNEL, ROOT)


async def test_slash_command_over_the_socket(socket_bot: RunningBot, fake_slack: FakeSlack) -> None:
    form = slash_command("stats", channel=CHANNEL)
    ack = await fake_slack.wait_ack(await fake_slack.send_envelope("slash_commands", form))
    assert ack["payload"]["response_type"] == "in_channel"
    (msg,) = await inbound(socket_bot)
    assert (msg.command, msg.text, msg.thread) == ("incident", "stats", None)
