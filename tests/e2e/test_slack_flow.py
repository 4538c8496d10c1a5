"""End to end on Slack: Alertmanager → a Block Kit thread in the routed channel, edits of its
root, threaded replies, button clicks back in, and Slack's rate limits and refusals."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.app.config import Config
from bot.chat.adapters.base import Reply
from bot.incidents import lifecycle
from tests.fakes.bot_server import RunningBot, polled, run_bot, with_alert
from tests.fakes.slack_api import (
    FakeSlack,
    SlackCall,
    SlackSender,
    block_actions,
    slack_settings,
)

INCIDENTS, ALERTS = "C0INCIDENTS", "C0ALERTS"
RAVI = "U024BE7LH"


def _config(
    bot_config: Callable[..., Config], fake: FakeSlack, critical: str = INCIDENTS
) -> Config:
    return bot_config(
        slack=slack_settings(fake),
        routes=[
            {"match": {"severity": "critical"}, "slack": [critical]},
            {"match": {}, "slack": [ALERTS]},
        ],
        services={
            "checkout": {
                "match": {"service": "checkout"},
                "actions": {"restart": {"shell": ["true"]}},
            }
        },
        people=[{"name": "Ravi Kumar", "aliases": ["ravi"], "slack": RAVI, "roles": ["responder"]}],
    )


@pytest.fixture
async def slack_bot(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> AsyncIterator[RunningBot]:
    async with run_bot(_config(bot_config, fake_slack)) as running:
        yield running


def _roots(fake: FakeSlack, channel: str) -> list[SlackCall]:
    return [
        c
        for c in fake.calls("chat.postMessage")
        if c.params["channel"] == channel and "thread_ts" not in c.params
    ]


def _action_ids(call: SlackCall) -> list[str]:
    return [
        e["action_id"]
        for b in call.params["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def _resolved(am: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(am)
    body["status"] = "resolved"
    for a in body["alerts"]:
        a["status"] = "resolved"
        a["endsAt"] = "2026-11-25T10:14:00Z"
    return body


async def _fire(bot: RunningBot, body: dict[str, Any]) -> str:
    resp = await bot.client.post("/webhooks/alertmanager", json=body)
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    return incident_id


async def _stats(bot: RunningBot) -> dict[str, Any]:
    return (await bot.client.get("/stats")).json()


async def test_alert_becomes_a_thread_that_is_edited_and_answered(
    slack_bot: RunningBot, fake_slack: FakeSlack, sample_am: dict[str, Any]
) -> None:
    incident_id = await _fire(slack_bot, sample_am)
    await slack_bot.settle()

    (root,) = _roots(fake_slack, INCIDENTS)
    assert _roots(fake_slack, ALERTS) == []  # the first matching route wins
    assert _action_ids(root) == ["ack", "resolve", "diagnose", "ticket", "action:restart"]
    assert {
        e["value"] for b in root.params["blocks"] if b["type"] == "actions" for e in b["elements"]
    } == {incident_id}
    root_ts = next(m.ts for m in fake_slack.messages.values() if m.thread_ts is None)

    # the diagnosis arrives as a threaded reply, and says which layer produced it
    replies = await slack_bot.wait_for(
        polled(lambda: fake_slack.thread(INCIDENTS, root_ts)), what="a threaded reply"
    )
    assert "Diagnosis" in replies[0].text

    # a repeat (one more alert in the group) edits the root instead of posting again
    await _fire(slack_bot, with_alert(sample_am, 1))
    (edit,) = await slack_bot.wait_for(
        polled(lambda: fake_slack.calls("chat.update")), what="the root edited"
    )
    assert (edit.params["channel"], edit.params["ts"]) == (INCIDENTS, root_ts)
    assert "*Alerts*\\n2" in json.dumps(edit.params["blocks"])

    # a click on Acknowledge comes back in and shows up on the root
    click = block_actions("ack", incident_id, channel=INCIDENTS, message_ts=root_ts)
    assert (await SlackSender(slack_bot.client).interactive(click)).status_code == 200
    acked = await slack_bot.wait_for(
        polled(
            lambda: [
                c
                for c in fake_slack.calls("chat.update")
                if "Acknowledged by ravi" in c.params["text"]
            ]
        ),
        what="the root showing who acknowledged",
    )
    assert "ack" not in _action_ids(acked[-1])

    # resolved: the root loses its buttons and the thread says so
    await _fire(slack_bot, _resolved(with_alert(sample_am, 1)))
    await slack_bot.wait_for(
        polled(lambda: [m for m in fake_slack.thread(INCIDENTS, root_ts) if "Resolved" in m.text]),
        what="Resolved in the thread",
    )
    await slack_bot.wait_for(
        polled(lambda: "Resolved" in fake_slack.messages[(INCIDENTS, root_ts)].text),
        what="the root showing resolved",
    )
    last = fake_slack.calls("chat.update")[-1]
    assert _action_ids(last) == []
    assert len(_roots(fake_slack, INCIDENTS)) == 1


async def test_a_burst_of_repeats_is_one_edit(
    slack_bot: RunningBot, fake_slack: FakeSlack, sample_am: dict[str, Any]
) -> None:
    await _fire(slack_bot, sample_am)
    await slack_bot.settle()
    for n in range(1, 11):
        await _fire(slack_bot, with_alert(sample_am, n))
    await slack_bot.wait_for(polled(lambda: fake_slack.calls("chat.update")), what="an edit")
    await slack_bot.settle()

    (edit,) = fake_slack.calls("chat.update")
    assert "*Alerts*\\n11" in json.dumps(edit.params["blocks"])
    assert len(_roots(fake_slack, INCIDENTS)) == 1


async def test_a_429_storm_delays_but_loses_nothing_and_keeps_order(
    slack_bot: RunningBot, fake_slack: FakeSlack, sample_am: dict[str, Any]
) -> None:
    incident_id = await _fire(slack_bot, sample_am)
    await slack_bot.settle()
    root_ts = next(m.ts for m in fake_slack.messages.values() if m.thread_ts is None)
    posts_before = len(fake_slack.calls("chat.postMessage"))

    fake_slack.fail_next(3, status=429, retry_after=1)
    steps = [f"step {i}" for i in range(1, 7)]
    async with slack_bot.runtime.store.write() as conn:
        inc = await lifecycle.get(conn, incident_id)
        for text in steps:
            await lifecycle.enqueue_reply(conn, slack_bot.runtime.cfg, inc, Reply(text))

    def delivered() -> list[str]:
        return [m.text for m in fake_slack.thread(INCIDENTS, root_ts) if m.text.startswith("step")]

    await slack_bot.wait_for(
        polled(lambda: len(delivered()) == len(steps)), timeout_s=30, what="every step"
    )
    assert delivered() == steps
    posts = fake_slack.calls("chat.postMessage")[posts_before:]
    assert len(posts) >= len(steps) + 3  # the refused attempts were really made, and retried


async def test_a_missing_channel_is_dead_lettered_not_retried_forever(
    bot_config: Callable[..., Config], fake_slack: FakeSlack, sample_am: dict[str, Any]
) -> None:
    fake_slack.channel_errors["C0GONE"] = "channel_not_found"
    async with run_bot(_config(bot_config, fake_slack, critical="C0GONE")) as bot:
        assert (await _stats(bot))["outbox"]["failed"] == 0
        await _fire(bot, sample_am)
        await bot.settle()
        await bot.settle()

        attempts = [
            c for c in fake_slack.calls("chat.postMessage") if c.params["channel"] == "C0GONE"
        ]
        assert len(attempts) == 1
        stats = await _stats(bot)
        assert stats["outbox"]["failed"] >= 1
        assert stats["user_dropped_count"] >= 1


async def test_a_root_edit_shows_the_state_when_it_is_sent_not_when_it_was_claimed(
    bot_config: Callable[..., Config], fake_slack: FakeSlack, sample_am: dict[str, Any]
) -> None:
    """A resolve that commits while an edit of the root is on its way is shown too."""
    cfg = _config(bot_config, fake_slack)
    cfg.outbox.update_coalesce_s = 0
    async with run_bot(cfg) as bot:
        await _fire(bot, sample_am)
        await bot.settle()
        root_ts = next(m.ts for m in fake_slack.messages.values() if m.thread_ts is None)

        hold = fake_slack.hold("chat.update")
        await _fire(bot, with_alert(sample_am, 1))  # a repeat: the root is to be edited
        sending = asyncio.create_task(bot.runtime.worker.run_once())
        await asyncio.wait_for(hold.arrived.wait(), 10)  # the edit is on its way
        await _fire(bot, _resolved(with_alert(sample_am, 1)))  # and the incident resolves
        hold.release()
        await sending

        await bot.wait_for(
            polled(lambda: "Resolved" in fake_slack.messages[(INCIDENTS, root_ts)].text),
            what="the root showing resolved",
        )
        assert _action_ids(fake_slack.calls("chat.update")[-1]) == []
