"""WhatsApp through the real bot, the real `twilio` client and a fake Twilio: pages out (free
text in the 24-hour window, the approved template outside it), replies in, signed exactly as
Twilio signs them (behind a proxy: over `http.public_url`), replays, strangers, forgeries,
delivery statuses, and a failed page that escalates at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select

from bot.app.config import Config
from bot.store import schema as t
from tests.e2e.test_escalation import Clock
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.jira_server import FakeJira, FakeUser
from tests.fakes.twilio_api import (
    FakeTwilio,
    TwilioSender,
    sign,
    whatsapp_settings,
)

PUBLIC_URL = "https://opsbot.example.com"  # what Twilio was given; the test reaches 127.0.0.1
RAVI, MEI, STRANGER = "+919800000001", "+6591234567", "+15550001111"
TEMPLATE = "HX" + "0" * 32
PEOPLE = [
    {
        "name": "Ravi Kumar",
        "aliases": ["ravi"],
        "whatsapp": RAVI,
        "jira": "ravi.kumar",
        "roles": ["responder", "approver"],
    },
    {"name": "Mei Chen", "aliases": ["mei"], "whatsapp": MEI, "roles": ["responder"]},
]
SERVICES = {
    name: {
        "match": {"service": name},
        "actions": {"restart": {"shell": ["true"]}},
        "approval": "none",
        "verify_timeout_s": 1,
    }
    for name in ("checkout", "payments")
}


@asynccontextmanager
async def whatsapp_bot(
    bot_config: Callable[..., Config], fake: FakeTwilio, **overrides: Any
) -> AsyncIterator[RunningBot]:
    settings: dict[str, Any] = {
        "whatsapp": whatsapp_settings(fake, template={"content_sid": TEMPLATE}),
        "http": {"public_url": PUBLIC_URL},
        "routes": [{"match": {"severity": "critical"}, "whatsapp": ["ravi"]}, {"match": {}}],
        "services": SERVICES,
        "people": PEOPLE,
        "outbox": {
            "base_backoff_s": 0.05,
            "max_backoff_s": 0.2,
            "rates": {"whatsapp": {"rate": 1 / 6, "burst": 50}},
            "update_coalesce_s": 0,  # root updates are due at once (WhatsApp's send nothing)
        },
        **overrides,
    }
    async with run_bot(bot_config(**settings)) as bot:
        yield bot


@pytest.fixture
async def bot(
    bot_config: Callable[..., Config], fake_twilio: FakeTwilio
) -> AsyncIterator[RunningBot]:
    async with whatsapp_bot(bot_config, fake_twilio) as running:
        yield running


def sender(bot: RunningBot) -> TwilioSender:
    return TwilioSender(bot.client, PUBLIC_URL)


async def fire(bot: RunningBot, service: str = "checkout", severity: str = "critical") -> str:
    resp = await bot.client.post(
        "/webhooks/generic",
        json={
            "incident_id": f"{service}-down",
            "service": service,
            "alert_type": "HighErrorRate",
            "severity": severity,
            "message": f"{service} 5xx above 5%",
            "logs": ["GET /cart 500", "java.lang.OutOfMemoryError: Java heap space"],
        },
    )
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    return incident_id


async def detail(bot: RunningBot, incident_id: str) -> dict[str, Any]:
    return (await bot.client.get(f"/api/incidents/{incident_id}")).json()


def texts(fake: FakeTwilio, number: str) -> list[str]:
    return [m.body or "" for m in fake.sent_to(number)]


async def say(bot: RunningBot, number: str, text: str, **kw: Any) -> None:
    resp = await sender(bot).message(number, text, **kw)
    assert resp.status_code == 200, resp.text
    await bot.settle()


async def open_window(bot: RunningBot, fake: FakeTwilio) -> None:
    """Ravi writes first, so free text may be sent to him for 24 hours."""
    await say(bot, RAVI, "help")
    assert "ack" in texts(fake, RAVI)[-1]


async def test_a_page_is_a_concise_text_then_the_diagnosis_and_repeats_send_nothing(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    await open_window(bot, fake_twilio)
    before = len(fake_twilio.messages)
    await fire(bot)
    await bot.settle()
    page, diagnosis = texts(fake_twilio, RAVI)[before:]
    assert page.splitlines() == [
        "🔴 CRITICAL #1 checkout",
        "checkout 5xx above 5%",
        "Reply `ack`, `restart`, or `#1 restart`.",
    ]
    assert diagnosis.startswith("#1 checkout: 🔎 ") and len(diagnosis.splitlines()) <= 2
    assert all(m.from_ == "whatsapp:+14155238886" for m in fake_twilio.messages)
    assert all(m.status_callback == f"{PUBLIC_URL}/twilio/status" for m in fake_twilio.messages)

    await fire(bot)  # the same alert again: WhatsApp cannot edit, so nothing is sent
    await bot.settle()
    assert len(texts(fake_twilio, RAVI)) == before + 2


async def test_outside_the_24_hour_window_the_approved_template_is_sent(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    await fire(bot)
    await bot.settle()
    (page,) = fake_twilio.sent_to(RAVI)  # the diagnosis waits until Ravi writes
    assert (page.body, page.content_sid) == (None, TEMPLATE)
    assert page.content_variables == {
        "1": "#1",
        "2": "critical",
        "3": "checkout",
        "4": "checkout 5xx above 5%",
    }


async def test_no_template_outside_the_window_sends_nothing_and_counts_the_drop(
    bot_config: Callable[..., Config], fake_twilio: FakeTwilio
) -> None:
    async with whatsapp_bot(
        bot_config, fake_twilio, whatsapp=whatsapp_settings(fake_twilio)
    ) as bot:
        await fire(bot)
        await bot.settle()
        assert fake_twilio.messages == []
        stats = (await bot.client.get("/stats")).json()
        # the page, and the diagnosis that had no conversation to go to: dead-lettered and
        # counted, not retried forever
        assert stats["outbox"]["failed"] == 2 and stats["user_dropped_count"] == 2


async def test_ack_by_reply_acknowledges_and_the_state_change_is_one_line_back(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    await open_window(bot, fake_twilio)
    incident_id = await fire(bot)
    await bot.settle()
    before = len(texts(fake_twilio, RAVI))
    await say(bot, RAVI, "ack")
    inc = await detail(bot, incident_id)
    assert (inc["status"], inc["acknowledged_by"]) == ("acknowledged", "ravi")
    assert texts(fake_twilio, RAVI)[before:] == ["#1 checkout: 👀 Acknowledged by @ravi."]


async def test_restart_goes_to_the_incident_last_sent_and_a_named_one_to_that_one(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    await open_window(bot, fake_twilio)
    first = await fire(bot, "checkout")
    await bot.settle()
    second = await fire(bot, "payments")
    await bot.settle()

    await say(bot, RAVI, "restart")
    await bot.settle()
    assert [a["action"] for a in (await detail(bot, second))["actions"]] == ["restart"]
    assert (await detail(bot, first))["actions"] == []
    assert any(t.startswith("#2 ") and "restart" in t.lower() for t in texts(fake_twilio, RAVI))

    await say(bot, RAVI, "#1 restart")
    await bot.settle()
    assert [a["action"] for a in (await detail(bot, first))["actions"]] == ["restart"]
    assert len((await detail(bot, second))["actions"]) == 1
    assert any(t.startswith("#1 ") and "restart" in t.lower() for t in texts(fake_twilio, RAVI))


async def test_file_a_jira_for_ravi_from_whatsapp(
    bot_config: Callable[..., Config], fake_twilio: FakeTwilio, fake_jira: FakeJira
) -> None:
    fake_jira.set_deployment("Server")
    fake_jira.users.append(FakeUser("ravi.kumar", "Ravi Kumar", "ravi@example.com"))
    jira = {
        "url": fake_jira.url,
        "username": fake_jira.username,
        "api_token": fake_jira.api_token,
        "deployment": "server",
    }
    async with whatsapp_bot(bot_config, fake_twilio, jira=jira) as bot:
        await open_window(bot, fake_twilio)
        incident_id = await fire(bot)
        await bot.settle()
        await say(bot, RAVI, "file a Jira for Ravi")
        await bot.settle()
        (issue,) = fake_jira.issues
        assert issue.fields["assignee"] == {"name": "ravi.kumar"}
        (ticket,) = (await detail(bot, incident_id))["tickets"]
        assert any(ticket["key"] in t for t in texts(fake_twilio, RAVI))


async def test_status_and_who_is_on_call_are_answered_on_the_same_line(
    bot_config: Callable[..., Config], fake_twilio: FakeTwilio
) -> None:
    rotation = {"people": ["mei", "ravi"], "handoff": "weekly", "start": "2026-01-05"}
    async with whatsapp_bot(
        bot_config, fake_twilio, oncall={"rotations": {"primary": rotation}}
    ) as bot:
        await open_window(bot, fake_twilio)
        await fire(bot)
        await bot.settle()
        await say(bot, RAVI, "status")
        assert texts(fake_twilio, RAVI)[-1].startswith(
            "#1 checkout: #1 checkout 5xx above 5% — Triggered"
        )
        await say(bot, RAVI, "who is on call")
        assert texts(fake_twilio, RAVI)[-1].startswith("#1 checkout: On call — primary: ")


async def test_an_unknown_number_gets_one_polite_refusal_and_an_audit_entry(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    first = await sender(bot).message(STRANGER, "restart checkout")
    assert first.status_code == 200
    assert "not in its on-call directory" in first.text and "<Message>" in first.text
    second = await sender(bot).message(STRANGER, "restart checkout please")
    assert "<Message>" not in second.text  # one refusal, not a conversation
    await bot.settle()
    async with bot.runtime.store.read() as conn:
        audit = (await conn.execute(select(t.audit.c.actor, t.audit.c.decision))).all()
        inbound = (await conn.execute(select(t.outbox).where(t.outbox.c.kind == "inbound"))).all()
    assert [tuple(a) for a in audit] == [(STRANGER, "refused"), (STRANGER, "refused")]
    assert inbound == [] and fake_twilio.messages == []


async def test_a_forged_or_missing_signature_is_403_and_nothing_happens(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    incident_id = await fire(bot)
    await bot.settle()
    forged = sign(f"{PUBLIC_URL}/twilio/whatsapp", {"Body": "ack"}, token="not-the-token")
    assert (await sender(bot).message(RAVI, "ack", signature=forged)).status_code == 403
    assert (await sender(bot).message(RAVI, "ack", signature="")).status_code == 403
    # signed for another address than the public URL Twilio was given
    direct = TwilioSender(bot.client, bot.url)
    assert (await direct.message(RAVI, "ack")).status_code == 403
    await bot.settle()
    assert (await detail(bot, incident_id))["status"] == "triggered"
    async with bot.runtime.store.read() as conn:
        assert (
            await conn.execute(select(t.outbox).where(t.outbox.c.kind == "inbound"))
        ).all() == []


async def test_a_replayed_message_sid_has_the_effect_of_once(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    await open_window(bot, fake_twilio)
    incident_id = await fire(bot)
    await bot.settle()
    for _ in range(2):
        resp = await sender(bot).message(RAVI, "restart", sid="SM" + "1" * 32)
        assert resp.status_code == 200
    await bot.settle()
    assert len((await detail(bot, incident_id))["actions"]) == 1


async def test_delivery_statuses_are_recorded_once_and_in_order(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    await fire(bot)
    await bot.settle()
    (page,) = fake_twilio.sent_to(RAVI)
    for status in ("sent", "delivered", "read", "delivered"):  # late news changes nothing
        assert (await sender(bot).status(page, status)).status_code == 204
    messages = (await bot.client.get("/stats")).json()["messages"]
    assert (messages["read"], messages["delivered"], messages["failed"]) == (1, 0, 0)
    forged = await sender(bot).post("/twilio/status", {"MessageSid": page.sid}, signature="x")
    assert forged.status_code == 403


async def test_a_failed_page_shows_in_the_timeline_and_stats_and_escalates_at_once(
    bot_config: Callable[..., Config], fake_twilio: FakeTwilio
) -> None:
    policy = {
        "match": {"severity": "critical"},
        "steps": [
            {"notify": ["ravi"], "channels": ["whatsapp"], "wait_s": 900},
            {"notify": ["mei"], "channels": ["whatsapp"]},
        ],
    }
    clock = Clock()
    async with whatsapp_bot(
        bot_config, fake_twilio, routes=[{"match": {}}], oncall={"policies": {"p": policy}}
    ) as bot:
        bot.runtime.escalator.clock = clock
        incident_id = await fire(bot)
        await bot.settle()
        (page,) = fake_twilio.sent_to(RAVI)
        assert await bot.runtime.escalator.tick() == 0 and fake_twilio.sent_to(MEI) == []

        for _ in range(2):  # Twilio may post the same callback twice: it counts once
            resp = await sender(bot).status(page, "failed", error_code="63016")
            assert resp.status_code == 204
        assert (await bot.client.get("/stats")).json()["messages"]["failed"] == 1
        timeline = (await detail(bot, incident_id))["timeline"]
        assert [e["text"] for e in timeline if e["kind"] == "delivery_failed"] == [
            "whatsapp message to Ravi Kumar failed (error 63016)"
        ]
        assert await bot.runtime.escalator.tick() == 1  # at once: the clock has not moved
        await bot.settle()
        assert len(fake_twilio.sent_to(MEI)) == 1


async def test_twilio_429_and_5xx_are_retried_and_the_page_arrives_once(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(1, status=503)
    fake_twilio.fail_next(1, status=429)
    await fire(bot)

    async def paged() -> bool:
        return bool(fake_twilio.sent_to(RAVI))

    await bot.wait_for(paged, timeout_s=20, what="the page after Twilio's refusals")
    await bot.settle()
    assert fake_twilio.requests >= 3 and len(fake_twilio.sent_to(RAVI)) == 1


async def test_a_signed_message_without_its_fields_is_400_naming_them(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    resp = await sender(bot).post("/twilio/whatsapp", {"Body": "ack"})
    assert resp.status_code == 400
    assert "MessageSid" in resp.json()["error"] and "From" in resp.json()["error"]
    as_json = await bot.client.post("/twilio/whatsapp", json={"Body": "ack"})
    assert as_json.status_code == 415


async def test_a_page_whose_answer_was_lost_is_found_not_sent_again(
    bot: RunningBot, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(1, status=502, after_sending=True)  # sent, but we hear an error
    incident_id = await fire(bot)

    async def recorded() -> bool:
        threads = (await detail(bot, incident_id))["threads"]
        return any(th["platform"] == "whatsapp" for th in threads)

    await bot.wait_for(recorded, what="the page recorded after the retry")
    (page,) = fake_twilio.sent_to(RAVI)
    threads = (await detail(bot, incident_id))["threads"]
    assert [th["thread_id"] for th in threads if th["platform"] == "whatsapp"] == [page.sid]
