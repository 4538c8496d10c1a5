"""Slack over HTTP: the real slack_sdk client against the fake Web API, and requests to
/slack/events signed and shaped exactly as Slack sends them to the running bot."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from fastapi import FastAPI

from agent.types import Category, Diagnosis, DiagnosisSource, Evidence, ProposedAction
from bot.app.config import Config, SlackConfig
from bot.chat.adapters.base import Button, InboundMessage, Reply, RootView, ThreadRef
from bot.chat.adapters.slack import EVENTS_PATH, SlackAdapter
from bot.errors import StoreUnavailable
from integrations.errors import PermanentError, RateLimited, TransientError
from tests.fakes.bot_server import RunningBot, free_port, run_bot
from tests.fakes.slack_api import (
    BOT_ID,
    BOT_USER_ID,
    FakeSlack,
    SlackSender,
    block_actions,
    event_callback,
    inbound,
    message_event,
    slack_settings,
    slash_command,
)

CHANNEL, ROOT = "C0INCIDENTS", "1700000000.000100"


def _view(**overrides: Any) -> RootView:
    fields: dict[str, Any] = {
        "incident_id": "inc-1",
        "short_id": 7,
        "title": "checkout 5xx above 5%",
        "status": "triggered",
        "severity": "critical",
        "service": "checkout",
        "labels": {"alertname": "HighErrorRate", "env": "prod"},
        "started_at": datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        "alert_count": 3,
        "status_line": "Triggered",
        "links": [("Source", "http://prometheus:9090/graph?g0.expr=a&b")],
        "buttons": [
            Button("ack", "Acknowledge", "inc-1", "primary"),
            Button("resolve", "Resolve", "inc-1"),
            Button("action:restart", "Restart", "inc-1", "danger"),
        ],
        "summary": "5xx ratio is 7% <!channel>",
    }
    return RootView(**(fields | overrides))


def _blocks(call_params: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in call_params.get("blocks") or [] if b["type"] == kind]


async def _nothing(msg: InboundMessage) -> bool:
    raise AssertionError("no inbound message expected")


@pytest.fixture
async def adapter(fake_slack: FakeSlack) -> SlackAdapter:
    return SlackAdapter(SlackConfig(**slack_settings(fake_slack)), _nothing)


# ---------------------------------------------------------------- outbound


async def test_root_message_is_block_kit_with_buttons(
    adapter: SlackAdapter, fake_slack: FakeSlack
) -> None:
    ref = await adapter.post_root(CHANNEL, _view())

    (call,) = fake_slack.calls("chat.postMessage")
    assert ref == ThreadRef("slack", CHANNEL, ROOT)
    p = call.params
    assert "thread_ts" not in p
    assert p["channel"] == CHANNEL
    assert p["text"].startswith("🔴 #7 checkout 5xx above 5%")
    (header,) = _blocks(p, "header")
    assert header["text"]["text"] == "🔴 #7 checkout 5xx above 5%"
    shown = json.dumps(p["blocks"])
    assert "&lt;!channel&gt;" in shown and "<!channel>" not in shown  # alert text can't ping
    assert "<!date^1795600800^" in shown  # started-at in each reader's time zone
    assert "`alertname=HighErrorRate`" in shown
    assert "<http://prometheus:9090/graph?g0.expr=a&amp;b|Source>" in shown
    (actions,) = _blocks(p, "actions")
    buttons = {e["action_id"]: e for e in actions["elements"]}
    assert list(buttons) == ["ack", "resolve", "action:restart"]
    assert {e["value"] for e in buttons.values()} == {"inc-1"}
    assert buttons["ack"]["style"] == "primary" and "confirm" not in buttons["ack"]
    assert buttons["action:restart"]["style"] == "danger"
    assert buttons["action:restart"]["confirm"]["confirm"]["text"] == "Restart"


async def test_update_edits_root_and_resolved_has_no_buttons(
    adapter: SlackAdapter, fake_slack: FakeSlack
) -> None:
    ref = await adapter.post_root(CHANNEL, _view())
    resolved = _view(status="resolved", status_line="Resolved by ravi after 14 min", buttons=[])
    await adapter.update_root(ref, resolved)

    (call,) = fake_slack.calls("chat.update")
    assert (call.params["channel"], call.params["ts"]) == (CHANNEL, ref.thread_id)
    assert _blocks(call.params, "actions") == []
    assert "Resolved by ravi after 14 min" in json.dumps(call.params["blocks"])
    assert call.params["text"].startswith("✅ #7")
    assert fake_slack.messages[(CHANNEL, ref.thread_id)].edits == 1
    assert len(fake_slack.calls("chat.postMessage")) == 1


async def test_replies_are_threaded_and_diagnosis_shows_its_source(
    adapter: SlackAdapter, fake_slack: FakeSlack
) -> None:
    ref = await adapter.post_root(CHANNEL, _view())
    diagnosis = Diagnosis(
        summary="Heap exhausted after deploy",
        root_cause="A memory leak in the cart cache",
        category=Category.MEMORY_LEAK,
        evidence=[Evidence(tool="logs", quote="java.lang.OutOfMemoryError:\n Java heap space")],
        checks=["heap usage", "last deploy"],
        mitigation="Restart, then roll back",
        proposed_action=ProposedAction(action="restart", service="checkout"),
        confidence=0.86,
        source=DiagnosisSource.FALLBACK,
        past_fixes="last time, restart fixed it (2 of 2 times)",
    )
    await adapter.reply(ref, Reply("Diagnosis", "diagnosis", diagnosis=diagnosis))
    approve = [
        Button("approve:5", "Approve", "inc-1", "primary"),
        Button("deny:5", "Deny", "inc-1"),
    ]
    await adapter.reply(
        ref, Reply("Restart checkout? Needs approval.", "approval", buttons=approve)
    )
    await adapter.reply(ref, Reply("Acknowledged by ravi & co <3", "info"))

    diag, approval, plain = fake_slack.calls("chat.postMessage")[1:]
    assert {c.params["thread_ts"] for c in (diag, approval, plain)} == {ref.thread_id}
    shown = json.dumps(diag.params["blocks"], ensure_ascii=False)
    assert "🟡 *Diagnosis* · fallback · 86% confident" in shown
    assert "> `logs` java.lang.OutOfMemoryError: Java heap space" in shown
    assert "1. heap usage" in shown and "say “restart it”" in shown
    assert "📎 Last time, restart fixed it" in shown
    assert diag.params["text"].startswith("🟡 Diagnosis (fallback, 86% confident)")
    (actions,) = _blocks(approval.params, "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["approve:5", "deny:5"]
    assert plain.params["text"] == "Acknowledged by ravi &amp; co &lt;3"
    assert "blocks" not in plain.params
    assert len(fake_slack.thread(CHANNEL, ref.thread_id)) == 3


async def test_oversized_alert_text_still_fits_block_kit(
    adapter: SlackAdapter, fake_slack: FakeSlack
) -> None:
    """The fake refuses blocks over Slack's limits (invalid_blocks), as Slack does."""
    long = _view(title="T" * 400, summary="S" * 5000, status_line="L" * 2500)
    ref = await adapter.post_root(CHANNEL, long)
    await adapter.reply(ref, Reply("R" * 5000, "approval", buttons=[Button("approve:1", "A" * 90)]))
    assert len(fake_slack.messages) == 2


async def test_permalink_with_api_url_written_without_its_slash(fake_slack: FakeSlack) -> None:
    settings = slack_settings(fake_slack, api_url=fake_slack.api_url.rstrip("/"))
    adapter = SlackAdapter(SlackConfig(**settings), _nothing)
    ref = await adapter.post_root(CHANNEL, _view())
    link = await adapter.permalink(ref)
    assert link == f"https://fake-workspace.slack.com/archives/{CHANNEL}/p1700000000000100"


async def test_slack_errors_become_integration_errors(
    adapter: SlackAdapter, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(status=429, retry_after=7)
    with pytest.raises(RateLimited) as limited:
        await adapter.post_root(CHANNEL, _view())
    assert limited.value.retry_after == 7

    fake_slack.fail_next(status=503)
    with pytest.raises(TransientError) as down:
        await adapter.post_root(CHANNEL, _view())
    assert not isinstance(down.value, RateLimited)

    fake_slack.fail_next(status=200, error="internal_error")
    with pytest.raises(TransientError):
        await adapter.post_root(CHANNEL, _view())

    fake_slack.channel_errors["C0GONE"] = "channel_not_found"
    with pytest.raises(PermanentError, match="channel_not_found"):
        await adapter.post_root("C0GONE", _view())
    fake_slack.channel_errors[CHANNEL] = "not_in_channel"
    with pytest.raises(PermanentError, match="not_in_channel"):
        await adapter.reply(ThreadRef("slack", CHANNEL, ROOT), Reply("hi"))
    # one attempt each: the outbox, not the client, decides about retrying
    assert len(fake_slack.calls("chat.postMessage")) == 5

    bad = SlackAdapter(
        SlackConfig(**slack_settings(fake_slack, bot_token="xoxb-revoked")), _nothing
    )
    with pytest.raises(PermanentError, match="invalid_auth"):
        await bad.post_root(CHANNEL, _view())

    wrong = SlackAdapter(
        SlackConfig(**slack_settings(fake_slack, api_url=fake_slack.api_url + "v2/")), _nothing
    )
    with pytest.raises(PermanentError, match="HTTP 404"):
        await wrong.post_root(CHANNEL, _view())

    port = free_port()  # nothing listens there
    gone = SlackAdapter(
        SlackConfig(bot_token="xoxb-x", api_url=f"http://127.0.0.1:{port}/api/"), _nothing
    )
    with pytest.raises(TransientError, match="unreachable"):
        await gone.post_root(CHANNEL, _view())


# ---------------------------------------------------------------- inbound over HTTP


@pytest.fixture
async def slack_bot(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> AsyncIterator[RunningBot]:
    async with run_bot(bot_config(slack=slack_settings(fake_slack))) as running:
        yield running


@pytest.fixture
def slack(slack_bot: RunningBot) -> SlackSender:
    return SlackSender(slack_bot.client)


async def test_url_verification_answers_the_challenge(slack: SlackSender) -> None:
    body = {
        "token": "x",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    resp = await slack.event(body)
    assert resp.status_code == 200
    assert resp.json() == {"challenge": body["challenge"]}


async def test_thread_message_is_committed_once_despite_retries(
    slack: SlackSender, slack_bot: RunningBot, fake_slack: FakeSlack
) -> None:
    payload = event_callback(
        message_event(
            "restart it &amp; tell <@U024BE7LH>",
            channel=CHANNEL,
            ts="1700000001.000200",
            thread_ts=ROOT,
        ),
        event_id="Ev0THREAD1",
    )
    first = await slack.event(payload)
    assert first.status_code == 200, first.text
    # acknowledged within Slack's 3 s because nothing is done before the answer: the message is
    # committed and queued, and no reply has gone out yet
    assert not fake_slack.calls("chat.postMessage")
    retry = await slack.event(payload, retry_num=1)
    assert retry.status_code == 200

    (msg,) = await inbound(slack_bot)
    assert msg.thread == ThreadRef("slack", CHANNEL, ROOT)
    assert (msg.channel, msg.user_id, msg.mentioned) == (CHANNEL, "U024BE7LH", False)
    assert msg.text == "restart it & tell @U024BE7LH"
    assert len(fake_slack.calls("auth.test")) == 1  # Bolt learns who it is once


async def test_mention_in_a_thread_arrives_twice_and_counts_once(
    slack: SlackSender, slack_bot: RunningBot
) -> None:
    ts, text = "1700000002.000300", f"<@{BOT_USER_ID}> what changed in the last hour?"
    message = message_event(text, channel=CHANNEL, ts=ts, thread_ts=ROOT)
    mention = message_event(text, channel=CHANNEL, ts=ts, thread_ts=ROOT, kind="app_mention")
    assert (await slack.event(event_callback(message))).status_code == 200
    assert (await slack.event(event_callback(mention))).status_code == 200

    (msg,) = await inbound(slack_bot)
    assert msg.mentioned and msg.text == "what changed in the last hour?"
    assert msg.thread == ThreadRef("slack", CHANNEL, ROOT)


async def test_mention_in_a_channel_has_no_thread(
    slack: SlackSender, slack_bot: RunningBot
) -> None:
    event = message_event(
        f"<@{BOT_USER_ID}> list", channel=CHANNEL, ts="1700000003.000400", kind="app_mention"
    )
    assert (await slack.event(event_callback(event))).status_code == 200
    (msg,) = await inbound(slack_bot)
    assert (msg.thread, msg.mentioned, msg.text) == (None, True, "list")


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(dict(user=BOT_USER_ID, bot_id=BOT_ID), id="the bot itself"),
        pytest.param(
            dict(user="U0OTHERBOT", bot_id="B0OTHER", subtype="bot_message"), id="another bot"
        ),
        pytest.param(dict(subtype="message_changed"), id="an edit"),
        pytest.param(dict(subtype="channel_join"), id="a join"),
        pytest.param(dict(thread_ts=None), id="channel chatter"),
        pytest.param(dict(parent_user_id="U0SOMEONE"), id="someone else's thread"),
    ],
)
async def test_ignored_messages_are_acknowledged_and_dropped(
    slack: SlackSender, slack_bot: RunningBot, event: dict[str, Any]
) -> None:
    fields = {"channel": CHANNEL, "ts": "1700000004.000500", "thread_ts": ROOT} | event
    text = "restart it"
    payload = event_callback(message_event(text, **fields))
    resp = await slack.event(payload)
    assert resp.status_code == 200  # anything else makes Slack retry, then disable the app
    assert await inbound(slack_bot) == []


async def test_button_click_carries_action_value_and_thread(
    slack: SlackSender, slack_bot: RunningBot
) -> None:
    on_root = block_actions(
        "ack", "inc-1", channel=CHANNEL, message_ts=ROOT, action_ts="1700000005.1"
    )
    on_reply = block_actions(
        "approve:5",
        "inc-1",
        channel=CHANNEL,
        message_ts="1700000006.000700",
        thread_ts=ROOT,
        label="Approve",
    )
    for payload in (on_root, on_reply):
        resp = await slack.interactive(payload)
        assert resp.status_code == 200, resp.text

    ack, approve = await inbound(slack_bot)
    assert (ack.action, ack.action_value, ack.user_name) == ("ack", "inc-1", "ravi")
    assert ack.thread == approve.thread == ThreadRef("slack", CHANNEL, ROOT)
    assert ack.event_id == f"{ROOT}:1700000005.1:U024BE7LH"
    assert approve.action == "approve:5"


async def test_slash_command_becomes_a_command(slack: SlackSender, slack_bot: RunningBot) -> None:
    form = slash_command("checkout is down &amp; payments fail", channel=CHANNEL)
    resp = await slack.command(form)
    assert resp.status_code == 200
    assert resp.json()["response_type"] == "in_channel"
    assert (await slack.command(form)).status_code == 200  # the same trigger twice counts once

    (msg,) = await inbound(slack_bot)
    assert (msg.command, msg.text, msg.channel, msg.thread) == (
        "incident",
        "checkout is down & payments fail",
        CHANNEL,
        None,
    )
    assert msg.event_id == form["trigger_id"]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"secret": "not-the-signing-secret"}, id="bad signature"),
        pytest.param({"timestamp": int(time.time()) - 6 * 60}, id="stale timestamp"),
    ],
)
async def test_unverified_requests_are_refused(
    slack: SlackSender, slack_bot: RunningBot, tamper: dict[str, Any]
) -> None:
    event = message_event("restart it", channel=CHANNEL, ts="1700000007.000800", thread_ts=ROOT)
    resp = await slack.event(event_callback(event), **tamper)
    assert resp.status_code == 401
    assert await inbound(slack_bot) == []


async def test_a_body_bolt_cannot_parse_is_refused_not_a_500(
    slack: SlackSender, slack_bot: RunningBot
) -> None:
    unsigned = await slack.raw("{not json", "application/json", secret="not-the-signing-secret")
    assert unsigned.status_code == 401
    signed = await slack.raw("{not json", "application/json")
    assert signed.status_code == 400, signed.text
    assert "Traceback" not in signed.text
    assert await inbound(slack_bot) == []


async def test_a_failed_commit_is_not_acknowledged(fake_slack: FakeSlack) -> None:
    """Slack retries anything but 2xx, so an event the store could not keep is answered 500."""

    async def store_down(msg: InboundMessage) -> bool:
        raise StoreUnavailable("database is locked")

    app = FastAPI()
    SlackAdapter(SlackConfig(**slack_settings(fake_slack)), store_down).mount(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsbot.test") as client:
        event = message_event("restart it", channel=CHANNEL, ts="1700000008.000900", thread_ts=ROOT)
        resp = await SlackSender(client).event(event_callback(event))
    assert resp.status_code == 500


def test_manifest_points_slack_at_what_the_adapter_serves() -> None:
    manifest = yaml.safe_load(
        (Path(__file__).parents[2] / "config" / "slack-manifest.yaml").read_text()
    )
    settings = manifest["settings"]
    urls = [
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        *(c["url"] for c in manifest["features"]["slash_commands"]),
    ]
    assert {urlsplit(u).path for u in urls} == {EVENTS_PATH}
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.channels",
        "message.groups",
    }
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [
        "/incident",
        "/oncall",
    ]
    assert {"chat:write", "commands", "app_mentions:read"} <= set(
        manifest["oauth_config"]["scopes"]["bot"]
    )
