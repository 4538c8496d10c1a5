"""Escalation through the real bot, with a clock the test moves: an unacknowledged incident
pages the next step on its channel after the wait, an ack stops the chain, the last step is
repeated, and a restart of the process between steps neither loses nor doubles a step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.app.config import Config
from bot.incidents.escalation import Escalator
from bot.incidents.models import utcnow
from bot.store import Store
from bot.store import schema as t
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.slack_api import (
    FakeSlack,
    SlackSender,
    block_actions,
    slack_settings,
    slash_command,
)

ALERTS, RAVI, MEI = "C0ALERTS", "U024BE7LH", "U0MEI0001"


class Clock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def escalation_config(bot_config: Callable[..., Config], **overrides: Any) -> Config:
    people = [
        {"name": "Ravi Kumar", "aliases": ["ravi"], "slack": RAVI, "whatsapp": "+919800000001"},
        {"name": "Mei Chen", "aliases": ["mei"], "slack": MEI, "whatsapp": "+6591234567"},
    ]
    oncall = {
        "policies": {
            "critical": {
                "match": {"severity": "critical"},
                "steps": [
                    {"notify": ["ravi"], "channels": ["slack"], "wait_s": 300},
                    {"notify": ["mei"], "channels": ["slack"], "wait_s": 600},
                ],
                "repeat": 1,
            }
        }
    }
    data: dict[str, Any] = {
        "routes": [{"match": {}, "slack": [ALERTS]}],
        "people": people,
        "oncall": oncall,
    }
    return bot_config(**{**data, **overrides})


def dms(fake: FakeSlack, user: str, *, roots: bool = False) -> list[str]:
    """Texts the bot sent to a person's direct messages (only incident cards with `roots`)."""
    return [
        c.params["text"]
        for c in fake.calls("chat.postMessage")
        if c.params["channel"] == user and not (roots and c.params.get("thread_ts"))
    ]


async def fire(bot: RunningBot, body: dict[str, Any]) -> str:
    resp = await bot.client.post("/webhooks/alertmanager", json=body)
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    return incident_id


async def timeline(bot: RunningBot, incident_id: str, kind: str) -> list[str]:
    data = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    return [e["text"] for e in data["timeline"] if e["kind"] == kind]


async def test_unacknowledged_pages_the_next_step_then_repeats_the_last(
    bot_config: Callable[..., Config], fake_slack: FakeSlack, sample_am: dict[str, Any]
) -> None:
    async with run_bot(escalation_config(bot_config, slack=slack_settings(fake_slack))) as bot:
        incident_id = await fire(bot, sample_am)
        clock = Clock()  # from just after the incident opened
        bot.runtime.escalator.clock = clock
        await bot.settle()
        # step 1 pages Ravi at once: the incident's card in his direct messages
        card = "🔴 #1 HighErrorRate: checkout 5xx above 5%"
        assert [m.split(" · ")[0] for m in dms(fake_slack, RAVI, roots=True)] == [card]
        assert dms(fake_slack, MEI) == []

        clock.advance(299)
        assert await bot.runtime.escalator.tick() == 0  # not yet: step 1 waits 300 s
        clock.advance(2)
        assert await bot.runtime.escalator.tick() == 1
        await bot.settle()
        assert len(dms(fake_slack, MEI)) == 1  # step 2, on its channel

        clock.advance(601)
        assert await bot.runtime.escalator.tick() == 1  # the one repeat of the last step
        await bot.settle()
        assert "you are paged (step 2/2, repeat 1/1)" in dms(fake_slack, MEI)[-1]

        clock.advance(3600)
        assert await bot.runtime.escalator.tick() == 0  # the chain has run out
        await bot.settle()
        assert len(dms(fake_slack, MEI)) == 2 and len(dms(fake_slack, RAVI, roots=True)) == 1
        steps = await timeline(bot, incident_id, "escalated")
        assert [s.split(":")[0] for s in steps] == [
            "Escalation step 1/2",
            "Escalation step 2/2",
            "Escalation step 2/2, repeat 1/1",
        ]


async def test_an_ack_stops_the_chain(
    bot_config: Callable[..., Config], fake_slack: FakeSlack, sample_am: dict[str, Any]
) -> None:
    clock = Clock()
    async with run_bot(escalation_config(bot_config, slack=slack_settings(fake_slack))) as bot:
        bot.runtime.escalator.clock = clock
        incident_id = await fire(bot, sample_am)
        await bot.settle()
        root_ts = next(
            m.ts for m in fake_slack.messages.values() if m.channel == ALERTS and not m.thread_ts
        )
        click = block_actions("ack", incident_id, channel=ALERTS, message_ts=root_ts)
        assert (await SlackSender(bot.client).interactive(click)).status_code == 200
        await bot.settle()

        clock.advance(301)
        assert await bot.runtime.escalator.tick() == 0
        clock.advance(10_000)
        assert await bot.runtime.escalator.tick() == 0
        await bot.settle()
        assert dms(fake_slack, MEI) == []
        assert await timeline(bot, incident_id, "escalation_stopped") == [
            "Escalation stopped: acknowledged by ravi"
        ]


async def test_a_restart_between_steps_neither_loses_nor_doubles_a_step(
    bot_config: Callable[..., Config], fake_slack: FakeSlack, sample_am: dict[str, Any]
) -> None:
    cfg = escalation_config(bot_config, slack=slack_settings(fake_slack))
    clock = Clock()
    async with run_bot(cfg) as bot:
        incident_id = await fire(bot, sample_am)
        await bot.settle()
    # the process is gone; step 2 came due while it was down
    clock.advance(400)
    async with run_bot(cfg) as bot:
        # two replicas of the new process tick at the same moment: the step fires once
        other_store = await Store.open(cfg.storage.url)
        try:
            other = Escalator(cfg, other_store, clock)
            bot.runtime.escalator.clock = clock
            fired = await asyncio.gather(bot.runtime.escalator.tick(), other.tick())
        finally:
            await other_store.close()
        assert sorted(fired) == [0, 1]
        assert await bot.runtime.escalator.tick() == 0
        await bot.settle()
        assert len(dms(fake_slack, MEI)) == 1
        assert len(await timeline(bot, incident_id, "escalated")) == 2
        async with bot.runtime.store.read() as conn:
            fired_steps = await conn.scalar(select(t.escalations.c.fired))
        assert fired_steps == 2


async def test_who_is_on_call_is_answered_in_slack_and_the_console(
    bot_config: Callable[..., Config], fake_slack: FakeSlack, sample_am: dict[str, Any]
) -> None:
    rotation = {
        "people": ["mei"],
        "handoff": "daily",
        "timezone": "Asia/Singapore",
        "start": "2026-01-01",
    }
    cfg = escalation_config(
        bot_config,
        slack=slack_settings(fake_slack),
        oncall={"rotations": {"primary": rotation}},
    )
    async with run_bot(cfg) as bot:
        incident_id = await fire(bot, sample_am)
        await bot.settle()
        resp = await SlackSender(bot.client).command(
            slash_command("", channel=ALERTS, command="/oncall")
        )
        assert resp.status_code == 200
        await bot.settle()
        answer = fake_slack.calls("chat.postMessage")[-1].params
        assert answer["channel"] == ALERTS
        assert answer["text"].startswith("On call — primary: Mei Chen until ")
        assert answer["text"].endswith("09:00 Asia/Singapore")

        said = await bot.client.post(
            f"/api/incidents/{incident_id}/messages", json={"text": "who is on call?"}
        )
        assert said.status_code == 202
        await bot.settle()
        messages = (await bot.client.get(f"/api/incidents/{incident_id}")).json()["messages"]
        assert "primary: Mei Chen" in messages[-1]["text"]


async def test_replicas_on_postgresql_fire_each_step_once(
    bot_config: Callable[..., Config],
    pg_url: str,
    sample_am: dict[str, Any],
) -> None:
    policy = {
        "steps": [
            {"notify": ["ravi"], "channels": ["console"], "wait_s": 60},
            {"notify": ["mei"], "channels": ["console"], "wait_s": 60},
        ],
        "repeat": 3,
    }
    cfg = escalation_config(
        bot_config,
        storage={"url": pg_url},
        routes=[{"match": {}}],
        oncall={"policies": {"p": policy}},
    )
    async with run_bot(cfg) as bot:
        incident_id = await fire(bot, sample_am)
        clock = Clock()
        stores = [await Store.open(pg_url, migrate=False) for _ in range(4)]
        try:
            replicas = [Escalator(cfg, store, clock) for store in stores]
            for expected in (1, 1, 1, 1, 0):  # step 2 and three repeats, then nothing
                clock.advance(61)
                fired = await asyncio.gather(*(r.tick() for r in replicas))
                assert sum(fired) == expected
        finally:
            for store in stores:
                await store.close()
        assert len(await timeline(bot, incident_id, "escalated")) == 5


async def test_the_on_call_step_pages_whoever_holds_the_shift_after_the_hand_off(
    bot_config: Callable[..., Config], sample_am: dict[str, Any]
) -> None:
    zone = ZoneInfo("Asia/Kolkata")
    handoff = (utcnow() + timedelta(minutes=30)).astimezone(zone).replace(second=0, microsecond=0)
    rotation = {
        "people": ["ravi", "mei"],  # Mei holds the shift until the hand-off, then Ravi
        "handoff": "daily",
        "at": f"{handoff:%H:%M}",
        "timezone": "Asia/Kolkata",
        "start": f"{handoff:%Y-%m-%d}",
    }
    policy = {
        "steps": [
            {"notify": ["ravi"], "channels": ["console"], "wait_s": 60},
            {"notify": ["oncall"], "channels": ["console"], "wait_s": 60},
        ],
        "repeat": 100,
    }
    cfg = escalation_config(
        bot_config,
        routes=[{"match": {}}],
        oncall={"rotations": {"primary": rotation}, "policies": {"p": policy}},
    )
    async with run_bot(cfg) as bot:
        incident_id = await fire(bot, sample_am)
        clock = Clock()
        bot.runtime.escalator.clock = clock
        clock.advance(61)
        assert await bot.runtime.escalator.tick() == 1
        clock.now = handoff - timedelta(seconds=1)
        assert await bot.runtime.escalator.tick() == 1
        clock.now = handoff
        assert await bot.runtime.escalator.tick() == 0  # the repeat waits its 60 s
        clock.advance(60)
        assert await bot.runtime.escalator.tick() == 1
        paged = [s.split(": paged ")[1] for s in await timeline(bot, incident_id, "escalated")]
        assert paged == [
            "Ravi Kumar (console)",
            "Mei Chen (console)",
            "Mei Chen (console)",
            "Ravi Kumar (console)",
        ]
