"""The chat layer's shared behaviour, run against every platform through its fake.

Each case is written once and runs for every driver in `chat_drivers.DRIVERS` (Slack through
the real slack_sdk and the fake Slack, the console through its HTTP API, a platform of direct
lines); what differs between platforms comes from their declared capabilities.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from bot.app.config import Config
from bot.chat.messages import Reply
from bot.incidents import lifecycle
from bot.store import schema as t
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.lost_answer import LosesFirstAnswer
from tests.protocol.chat_drivers import ASHA, DRIVERS, PEOPLE, RAVI, Driver, drain

PUBLIC_URL = "http://opsbot.test"


@dataclass
class Chat:
    bot: RunningBot
    driver: Driver

    async def fire(self, service: str = "checkout", key: str = "k1", message: str = "") -> str:
        body = {
            "incident_id": key,
            "service": service,
            "alert_type": "ServiceDown",
            "severity": "critical",
            "message": message or f"{service} is down",
        }
        resp = await self.bot.client.post("/webhooks/generic", json=body)
        assert resp.status_code == 200, resp.text
        (incident_id,) = resp.json()["incidents"]
        await drain(self.bot)
        return incident_id

    async def said_next(self, incident_id: str, who: Any, text: str) -> list[str]:
        before = len(await self.driver.said(self.bot, incident_id))
        await self.driver.say(self.bot, incident_id, who, text)
        await drain(self.bot)
        return (await self.driver.said(self.bot, incident_id))[before:]

    async def actions(self, incident_id: str) -> list[tuple[str, str]]:
        async with self.bot.runtime.store.read() as conn:
            rows = (
                await conn.execute(
                    select(t.actions.c.action, t.actions.c.state)
                    .where(t.actions.c.incident_id == incident_id)
                    .order_by(t.actions.c.id)
                )
            ).all()
        return [(r.action, r.state) for r in rows]


def _config(bot_config: Callable[..., Config], driver: Driver) -> Config:
    restart = {"restart": {"shell": ["true"], "timeout_s": 10}}
    return bot_config(
        http={"public_url": PUBLIC_URL},
        services={
            "checkout": {
                "match": {"service": "checkout"},
                "actions": restart,
                "approval": "approve",
            },
            "search": {"match": {"service": "search"}, "actions": restart, "approval": "none"},
        },
        people=PEOPLE,
        outbox={
            "base_backoff_s": 0.01,
            "max_backoff_s": 0.05,
            "update_coalesce_s": 0,
            "per_channel_rate": 1000,
            "per_channel_burst": 1000,
            "rates": {p: {"rate": 1000, "burst": 1000} for p in ("discord", "whatsapp")},
        },
        **driver.settings(),
    )


@pytest.fixture(params=sorted(DRIVERS))
async def chat(
    request: pytest.FixtureRequest, bot_config: Callable[..., Config]
) -> AsyncIterator[Chat]:
    driver = DRIVERS[request.param]()
    async with driver.running():
        cfg = _config(bot_config, driver)  # the fake's address is known once it runs
        async with run_bot(cfg, adapters=driver.adapters()) as bot:
            await driver.ready(bot)
            yield Chat(bot, driver)


# ---- roots ---------------------------------------------------------------------------------


async def test_a_root_is_posted_once_per_incident(chat: Chat) -> None:
    incident_id = await chat.fire()
    await chat.fire()  # the same alert again
    assert len(await chat.driver.roots(chat.bot)) == 1
    assert "checkout is down" in await chat.driver.root_now(chat.bot, incident_id)


async def test_a_crash_between_posting_and_recording_does_not_post_twice(chat: Chat) -> None:
    platform = _platform(chat)
    adapters = chat.bot.runtime.adapters
    adapters[platform] = LosesFirstAnswer(adapters[platform], "post_root")
    incident_id = await chat.fire()

    assert len(await chat.driver.roots(chat.bot)) == 1
    detail = (await chat.bot.client.get(f"/api/incidents/{incident_id}")).json()
    recorded = [th["channel"] for th in detail["threads"] if th["platform"] == platform]
    assert recorded and len(recorded) == len(set(recorded))  # one conversation per place
    assert await chat.driver.said(chat.bot, incident_id)  # the diagnosis found the conversation


def _platform(chat: Chat) -> str:
    caps = chat.driver.capabilities(chat.bot)
    return next(p for p, a in chat.bot.runtime.adapters.items() if a.capabilities is caps)


# ---- edits ---------------------------------------------------------------------------------


async def test_repeats_edit_the_root_or_say_nothing_and_a_state_change_is_one_line(
    chat: Chat,
) -> None:
    caps = chat.driver.capabilities(chat.bot)
    incident_id = await chat.fire()
    before = await chat.driver.said(chat.bot, incident_id)
    for n in range(3):  # repeats: more alerts in the same incident
        body = {"incident_id": "k1", "service": "checkout", "alert_type": f"Also{n}"}
        await chat.bot.client.post("/webhooks/generic", json={**body, "severity": "critical"})
    await drain(chat.bot)
    assert await chat.driver.said(chat.bot, incident_id) == before  # no message per repeat
    assert len(await chat.driver.roots(chat.bot)) == 1

    said = await chat.said_next(incident_id, RAVI, "ack")
    assert len(said) == 1 and f"Acknowledged by @{chat.driver.name_of(RAVI)}" in said[0]
    root = await chat.driver.root_now(chat.bot, incident_id)
    if caps.can_edit:
        assert chat.driver.name_of(RAVI) in root  # the root shows who acknowledged
    else:
        assert "Acknowledged" not in root  # sent once, never changed


# ---- answers in place ----------------------------------------------------------------------


async def test_a_message_in_a_conversation_is_answered_there(chat: Chat) -> None:
    incident_id = await chat.fire()
    said = await chat.said_next(incident_id, RAVI, "status")
    assert len(said) == 1 and "#1" in said[0] and "Triggered" in said[0]


async def test_a_direct_message_is_answered_where_it_was_sent(chat: Chat) -> None:
    await chat.fire()
    answers = await chat.driver.direct(chat.bot, RAVI, "status #1")
    if answers is None:
        pytest.skip(f"{chat.driver.name} has no conversations outside incidents")
    assert any("#1" in a and "Triggered" in a for a in answers), answers
    answers = await chat.driver.direct(chat.bot, RAVI, "ack #1")
    assert answers is not None
    assert any(a.startswith("#1 checkout: ") and "Acknowledged by" in a for a in answers)
    answers = await chat.driver.direct(chat.bot, RAVI, "resolve #1")
    assert answers is not None
    assert any(a.startswith("#1 checkout: ") and "Resolved by" in a for a in answers)
    assert (await chat.bot.client.get("/stats")).json()["outbox"]["failed"] == 0


async def test_a_slash_command_is_answered_where_it_was_typed(chat: Chat) -> None:
    await chat.fire()
    answers = await chat.driver.command(chat.bot, RAVI, "list")
    if answers is None:
        pytest.skip(f"{chat.driver.name} has no slash commands")
    assert len(answers) == 1 and "#1" in answers[0] and "Open incidents" in answers[0]


# ---- approvals by text ---------------------------------------------------------------------


async def _prompted(chat: Chat) -> str:
    incident_id = await chat.fire()
    said = await chat.said_next(incident_id, RAVI, "restart it")
    assert any("needs approval" in s.lower() or "approve" in s.lower() for s in said), said
    assert await chat.actions(incident_id) == [("restart", "pending_approval")]
    return incident_id


async def test_approve_by_text_does_what_the_button_does(chat: Chat) -> None:
    incident_id = await _prompted(chat)
    said = await chat.said_next(incident_id, RAVI, "approve #1")
    assert any(f"Approved by @{chat.driver.name_of(RAVI)}" in s for s in said), said
    assert await chat.actions(incident_id) == [("restart", "succeeded")]


async def test_deny_by_text_does_what_the_button_does(chat: Chat) -> None:
    incident_id = await _prompted(chat)
    await chat.said_next(incident_id, RAVI, "deny #1")
    assert await chat.actions(incident_id) == [("restart", "denied")]


async def test_a_bare_yes_right_after_the_prompt_approves(chat: Chat) -> None:
    incident_id = await _prompted(chat)
    await chat.said_next(incident_id, RAVI, "yes")
    assert await chat.actions(incident_id) == [("restart", "succeeded")]


async def test_a_bare_yes_to_something_else_approves_nothing(chat: Chat) -> None:
    incident_id = await _prompted(chat)
    await chat.said_next(incident_id, RAVI, "hmm, let me look at the dashboards first")
    said = await chat.said_next(incident_id, RAVI, "yes")  # not an answer to the prompt
    assert any("approve #1" in s for s in said), said
    assert await chat.actions(incident_id) == [("restart", "pending_approval")]


async def test_a_bare_yes_from_someone_who_may_not_approve_approves_nothing(chat: Chat) -> None:
    if chat.driver.name_of(ASHA) == chat.driver.name_of(RAVI):
        pytest.skip(f"{chat.driver.name} has one user, who may approve")
    incident_id = await _prompted(chat)
    said = await chat.said_next(incident_id, ASHA, "yes")
    assert any("not an approver" in s for s in said), said
    assert await chat.actions(incident_id) == [("restart", "pending_approval")]


# ---- text ----------------------------------------------------------------------------------


async def test_a_long_text_is_cut_at_a_line_with_a_link_to_the_rest(chat: Chat) -> None:
    caps = chat.driver.capabilities(chat.bot)
    incident_id = await chat.fire()
    lines = [f"log line {n:04d}: connection refused by upstream" for n in range(1000)]
    async with chat.bot.runtime.store.write() as conn:
        inc = await lifecycle.get(conn, incident_id)
        await lifecycle.enqueue_reply(conn, chat.bot.runtime.cfg, inc, Reply("\n".join(lines)))
    await drain(chat.bot)

    (text,) = [s for s in await chat.driver.said(chat.bot, incident_id) if "log line" in s]
    assert len(text) <= caps.max_length
    shown = [line.partition("log line")[2] for line in text.split("\n") if "log line" in line]
    assert ["log line" + line for line in shown] == lines[: len(shown)]  # whole lines, in order
    more = len(lines) - len(shown)
    assert text.endswith(f"…({more} more lines: {PUBLIC_URL}/#/incidents/{incident_id})")


async def test_mentions_in_alert_text_notify_nobody(chat: Chat) -> None:
    incident_id = await chat.fire(message="@everyone <!channel> <!here> <@&123456> @here down")
    texts = [*await chat.driver.roots(chat.bot), *await chat.driver.said(chat.bot, incident_id)]
    texts.append(await chat.driver.root_now(chat.bot, incident_id))
    assert texts
    assert [x for x in texts if chat.driver.pings(x)] == []


# ---- a line shared by incidents ------------------------------------------------------------


@pytest.fixture(params=["line", "whatsapp"])
async def line(
    request: pytest.FixtureRequest, bot_config: Callable[..., Config]
) -> AsyncIterator[Chat]:
    driver = DRIVERS[request.param]()
    async with (
        driver.running(),
        run_bot(_config(bot_config, driver), adapters=driver.adapters()) as bot,
    ):
        await driver.ready(bot)
        yield Chat(bot, driver)


async def test_on_a_direct_line_it_is_the_incident_last_sent_unless_one_is_named(
    line: Chat,
) -> None:
    first = await line.fire("checkout", key=f"a-{uuid.uuid4().hex}")
    second = await line.fire("search", key=f"b-{uuid.uuid4().hex}")

    answers = await line.driver.direct(line.bot, RAVI, "restart it")
    assert await line.actions(second) == [("restart", "succeeded")]
    assert await line.actions(first) == []
    assert answers and all(a.startswith("#2 search: ") for a in answers), answers

    answers = await line.driver.direct(line.bot, RAVI, "#1 restart")
    assert await line.actions(first) == [("restart", "pending_approval")]
    assert answers and all(a.startswith("#1 checkout: ") for a in answers), answers
    assert any("approve #1" in a for a in answers)  # no buttons here: what to type instead
