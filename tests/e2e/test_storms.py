"""Storms: people before background work, priorities and merging in the outbox, and a storm
of new incidents in one channel as one digest message (the real bot, the fake Slack)."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from bot.app.config import Config
from bot.incidents import lifecycle
from bot.incidents.models import utcnow
from bot.queue import outbox
from bot.store import schema as t
from tests.e2e.test_whatsapp import RAVI, TEMPLATE, open_window, sender, texts, whatsapp_bot
from tests.e2e.test_whatsapp import fire as fire_wa
from tests.fakes.bot_server import RunningBot, polled, run_bot
from tests.fakes.lost_answer import LosesFirstAnswer
from tests.fakes.slack_api import (
    FakeSlack,
    SlackMessage,
    SlackSender,
    block_actions,
    event_callback,
    message_event,
    slack_settings,
)
from tests.fakes.twilio_api import FakeTwilio

CHANNEL = "C0STORM"


def group(i: int, status: str = "firing", service: str | None = None) -> dict[str, Any]:
    """Alertmanager's notification for group `i` (one alert)."""
    name = f"Storm{i:03d}"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "status": status,
        "receiver": "opsbot",
        "groupLabels": {"alertname": name},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": name,
                    "service": service or f"svc-{i % 3}",
                    "severity": ("critical", "warning")[i % 2],
                },
                "annotations": {"summary": f"{name} is failing"},
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": "2026-11-25T10:14:00Z"
                if status == "resolved"
                else "0001-01-01T00:00:00Z",
                "fingerprint": f"{i:016x}",
            }
        ],
    }


def slack_config(bot_config: Callable[..., Config], fake: FakeSlack, **extra: Any) -> Config:
    return bot_config(
        slack=slack_settings(fake), routes=[{"match": {}, "slack": [CHANNEL]}], **extra
    )


async def fire(bot: RunningBot, body: dict[str, Any]) -> str:
    resp = await bot.client.post("/webhooks/alertmanager", json=body)
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    return incident_id


async def until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `check` (plain or async) until it is truthy; the bot's own worker runs meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := await _result(check())):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value


async def status(bot: RunningBot, incident_id: str) -> str:
    return (await bot.client.get(f"/api/incidents/{incident_id}")).json()["status"]


async def pending(bot: RunningBot, kind: str) -> int:
    o = t.outbox.c
    async with bot.runtime.store.read() as conn:
        return int(
            await conn.scalar(select(func.count()).where(o.kind == kind, o.status == "pending"))
            or 0
        )


async def test_ack_from_slack_and_the_console_goes_before_thousands_of_diagnoses(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> None:
    queued = 3000
    async with run_bot(slack_config(bot_config, fake_slack), background_worker=True) as bot:
        in_slack, in_console = await fire(bot, group(1)), await fire(bot, group(2))

        async def root_ts() -> str | None:
            roots = [m for m in fake_slack.messages.values() if m.thread_ts is None]
            return next((m.ts for m in roots if "Storm001" in m.text), None)

        ts = await until(root_ts, 30, "the root of the first incident")
        async with bot.runtime.store.write() as conn:
            inc = await lifecycle.get(conn, in_console)
            jobs = [lifecycle.job_item("diagnose", inc) for _ in range(queued)]
            await conn.run_sync(outbox.enqueue_many, jobs)

        said = message_event("ack", channel=CHANNEL, ts="1700000099.000001", thread_ts=ts)
        assert (await SlackSender(bot.client).event(event_callback(said))).status_code == 200
        resp = await bot.client.post(f"/api/incidents/{in_console}/messages", json={"text": "ack"})
        assert resp.status_code < 300, resp.text

        left: dict[str, int] = {}
        for incident_id in (in_slack, in_console):

            async def acked(incident_id: str = incident_id) -> bool:
                if await status(bot, incident_id) != "acknowledged":
                    return False
                left[incident_id] = await pending(bot, "diagnose")
                return True

            await until(acked, 60, f"{incident_id} acknowledged")
        # each ack took effect while most of the diagnoses queued before it still waited
        assert min(left.values()) > queued // 2, left


async def test_a_diagnosis_finished_after_the_resolution_is_a_summary_in_the_thread(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> None:
    async with run_bot(slack_config(bot_config, fake_slack)) as bot:
        await fire(bot, group(1, service="checkout"))
        await fire(bot, group(1, "resolved", service="checkout"))

        def replies() -> list[str]:
            roots = [m for m in fake_slack.messages.values() if m.thread_ts is None]
            return [m.text for r in roots for m in fake_slack.thread(CHANNEL, r.ts)]

        def diagnosed() -> list[str]:
            return [s for s in replies() if "Diagnosis" in s]

        (late,) = await bot.wait_for(polled(diagnosed), timeout_s=30, what="the diagnosis")
        (root,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
        assert replies()[0].startswith("✅ Resolved")
        assert "finished after the incident resolved" in late
        assert "Proposed action" not in late and "Check first" not in late
        assert "Resolved" in fake_slack.messages[(CHANNEL, root.ts)].text


async def test_a_worker_crash_mid_batch_restarts_it_loses_nothing_and_doubles_nothing(
    bot_config: Callable[..., Config],
) -> None:
    cfg = bot_config(outbox={"restart_s": 0.5, "stall_s": 60})
    async with run_bot(cfg, background_worker=True) as bot:
        worker = bot.runtime.worker
        diagnose = bot.runtime.handlers["diagnose"]
        failed: list[int] = []

        async def diagnose_failing_once(item: outbox.Item) -> None:
            if not failed:
                failed.append(item.id)
                raise RuntimeError("a bug in a handler")
            await diagnose(item)

        crashing = True

        def ingesting() -> bool:
            if crashing:
                raise RuntimeError("a bug in the worker's loop")
            return False

        bot.runtime.handlers["diagnose"] = diagnose_failing_once
        worker.ingesting = ingesting
        ids = [await fire(bot, group(i)) for i in range(5)]

        async def not_ready() -> str | None:
            resp = await bot.client.get("/readyz")
            return resp.json()["error"] if resp.status_code == 503 else None

        assert "restarting" in await until(not_ready, 30, "/readyz failing")
        crashing = False

        async def all_diagnosed() -> bool:
            found = [(await bot.client.get(f"/api/incidents/{i}")).json() for i in ids]
            return all(inc["diagnoses"] for inc in found)

        await until(all_diagnosed, 60, "every incident diagnosed")
        await until(lambda: _pending_is(bot, 0), 60, "the outbox drained")
        assert (await bot.client.get("/readyz")).status_code == 200
        for incident_id in ids:
            detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
            assert len(detail["diagnoses"]) == 1  # the failed attempt was retried once
        stats = (await bot.client.get("/stats")).json()["outbox"]
        assert stats["worker_restarts"] >= 1 and stats["worker_running"]
        assert stats["last_success_at"] is not None and failed
        metrics = (await bot.client.get("/metrics")).text
        assert "opsbot_outbox_worker_restarts_total" in metrics


async def _pending_is(bot: RunningBot, n: int) -> bool:
    return (await bot.client.get("/stats")).json()["outbox"]["pending"] == n


async def test_a_429_on_one_channel_does_not_hold_back_another(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> None:
    held, free = "C0HELD", "C0FREE"
    cfg = bot_config(
        slack=slack_settings(fake_slack),
        routes=[
            {"match": {"severity": "critical"}, "slack": [held]},
            {"match": {}, "slack": [free]},
        ],
    )
    fake_slack.fail_next(1000, status=429, retry_after=60, channel=held)
    async with run_bot(cfg, background_worker=True) as bot:
        for i in range(6):  # even: critical, in the held channel; odd: warning, in the free one
            await fire(bot, group(i))

        def roots(channel: str) -> list[str]:
            return [
                m.text
                for m in fake_slack.messages.values()
                if m.channel == channel and m.thread_ts is None
            ]

        await until(lambda: len(roots(free)) == 3, 30, "the free channel's three roots")
        assert roots(held) == []
        await fire(bot, group(6))  # critical: news for the held channel while it waits
        await fire(bot, group(7))
        await until(lambda: len(roots(free)) == 4, 30, "the free channel's fourth root")
        refused = [c for c in fake_slack.calls() if c.params.get("channel") == held]
        assert 1 <= len(refused) <= 3  # what was in flight; then it waits out its Retry-After


async def _result(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def top_level(fake: FakeSlack, channel: str = CHANNEL) -> list[SlackMessage]:
    """The channel's own messages (roots and digests), oldest first."""
    return sorted(
        (m for m in fake.messages.values() if m.channel == channel and m.thread_ts is None),
        key=lambda m: m.ts,
    )


def shown(m: SlackMessage) -> str:
    return m.text + json.dumps(m.blocks)


async def test_a_storm_is_one_digest_that_opens_threads_when_acted_on_and_when_it_ends(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> None:
    cfg = slack_config(
        bot_config,
        fake_slack,
        outbox={"per_channel_rate": 1.0, "per_channel_burst": 3},
        storm={"window_s": 5, "quiet_s": 30, "edit_interval_s": 0},
    )
    assert cfg.storm.enabled
    async with run_bot(cfg) as bot:
        desk = bot.runtime.router.storms
        assert desk.threshold(f"slack:{CHANNEL}") == 8  # 3 at once, then 1 a second for 5 s
        now = [utcnow()]
        desk.clock = lambda: now[0]

        # a few incidents: a root each, no storm
        for i in range(3):
            await fire(bot, group(i))
        await bot.wait_for(polled(lambda: len(top_level(fake_slack)) == 3), 30, what="3 roots")

        # more new incidents than the channel posts in 5 s: one digest names them all
        ids = {i: await fire(bot, group(i)) for i in range(3, 23)}
        await bot.wait_for(polled(lambda: len(top_level(fake_slack)) == 4), 30, what="a digest")
        await bot.settle()
        digest = top_level(fake_slack)[-1]
        assert "Storm: 20 incidents" in digest.text
        assert all(f"Storm{i:03d}" in shown(digest) for i in range(3, 23))
        assert len(top_level(fake_slack)) == 4  # no root of their own
        stats = (await bot.client.get("/stats")).json()
        assert [(s["channel"], s["incidents"]) for s in stats["storms"]] == [(CHANNEL, 20)]

        # acting on the digest opens the incident's own thread: its button, or "#N" typed
        opened = ids[3]
        short = (await bot.client.get(f"/api/incidents/{ids[4]}")).json()["short_id"]
        click = block_actions("open", opened, channel=CHANNEL, message_ts=digest.ts)
        assert (await SlackSender(bot.client).interactive(click)).status_code == 200
        typed = message_event(f"#{short}", channel=CHANNEL, ts="1700000099.000002")
        assert (await SlackSender(bot.client).event(event_callback(typed))).status_code == 200
        await bot.wait_for(polled(lambda: len(top_level(fake_slack)) == 6), 30, what="2 threads")
        roots = top_level(fake_slack)[-2:]
        assert {"Storm003" in r.text or "Storm004" in r.text for r in roots} == {True}

        # resolved ones show resolved in the digest (an edit, not a new message)
        for i in range(5, 17):
            await fire(bot, group(i, "resolved"))
        await bot.settle()
        await bot.wait_for(
            polled(lambda: "12 resolved" in fake_slack.messages[(CHANNEL, digest.ts)].text),
            30,
            what="the digest showing 12 resolved",
        )
        assert len(top_level(fake_slack)) == 6

        # quiet for 30 s, and few enough open: over; each one still open gets its thread
        now[0] += timedelta(seconds=31)
        await desk.tick()
        await bot.wait_for(
            polled(lambda: "Storm over" in fake_slack.messages[(CHANNEL, digest.ts)].text),
            30,
            what="the digest saying the storm is over",
        )
        await bot.wait_for(polled(lambda: len(top_level(fake_slack)) == 12), 30, what="6 roots")
        named = " ".join(shown(m) for m in top_level(fake_slack))
        assert all(f"Storm{i:03d}" in named for i in range(23))
        rooted = [m for m in top_level(fake_slack) if m.ts != digest.ts]
        assert len(rooted) == len({m.text for m in rooted}) == 11  # nobody got two roots
        assert fake_slack.messages[(CHANNEL, digest.ts)].edits <= cfg.storm.max_edits
        assert (await bot.client.get("/stats")).json()["storms"] == []


async def test_a_digest_whose_answer_was_lost_is_found_again_not_posted_twice(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> None:
    cfg = slack_config(bot_config, fake_slack, storm={"edit_interval_s": 0})
    async with run_bot(cfg) as bot:
        adapters = bot.runtime.adapters
        adapters["slack"] = LosesFirstAnswer(adapters["slack"], "post_digest")
        for i in range(20):
            await fire(bot, group(i))

        def digests() -> list[SlackMessage]:
            return [m for m in top_level(fake_slack) if "Storm: " in m.text]

        def tried_again() -> bool:
            return bool(fake_slack.calls("conversations.history")) or len(digests()) > 1

        await bot.wait_for(polled(tried_again), 30, what="the digest's second attempt")
        await bot.settle()
        (digest,) = digests()
        assert "Storm: 20 incidents" in digest.text and digest.edits >= 1  # shown as it is now
        assert all(f"Storm{i:03d}" in shown(digest) for i in range(20))
        assert len(top_level(fake_slack)) == 1  # no second digest, no root of their own
        await fire(bot, group(20))  # the storm goes on in the message that was found
        await bot.settle()
        assert "Storm020" in shown(fake_slack.messages[(CHANNEL, digest.ts)])
        assert len(top_level(fake_slack)) == 1


async def test_whatsapp_gets_a_storm_as_a_new_message_at_most_every_resend_interval(
    bot_config: Callable[..., Config], fake_twilio: FakeTwilio
) -> None:
    """No edits on WhatsApp: one message names the storm instead of one per incident; its
    changes are the next message, not before `storm.resend_interval_s`; when it ends, each
    incident still open gets its own message."""
    outbox_cfg = {"rates": {"whatsapp": {"rate": 10, "burst": 3}}, "update_coalesce_s": 0}
    storm_cfg = {"window_s": 0.5, "resend_interval_s": 3600, "quiet_s": 30}  # a storm: over 8
    async with whatsapp_bot(bot_config, fake_twilio, outbox=outbox_cfg, storm=storm_cfg) as bot:
        await open_window(bot, fake_twilio)
        before = len(texts(fake_twilio, RAVI))

        async def sent(n: int) -> list[str]:
            """The next `n` messages Ravi got (once they are all there), and nothing more."""
            await bot.wait_for(
                polled(lambda: len(texts(fake_twilio, RAVI)) >= before + n), 30, what=f"{n}"
            )
            await bot.settle()
            return texts(fake_twilio, RAVI)[before:]

        ids = [await fire_wa(bot, service=f"svc{i:02d}") for i in range(12)]
        (storm,) = await sent(1)
        assert storm.startswith("⚡ Storm: 12 incidents")
        shorts = [(await bot.client.get(f"/api/incidents/{i}")).json()["short_id"] for i in ids]
        assert all(f"#{n} " in storm for n in shorts)
        assert "Reply `#42` for one incident's own messages." in storm

        # Ravi asks for the last one: it is his own message now, not a line of the next one
        await sender(bot).message(RAVI, f"#{shorts[11]}")
        said = (await sent(2))[1:]
        assert said[0].startswith(f"🔴 CRITICAL #{shorts[11]} svc11")
        assert all(m.startswith(f"#{shorts[11]} svc11: ") for m in said[1:])  # its diagnosis
        before += len(said)  # counted as if said before the storm: the indexes below hold

        for i in range(4):  # changes wait for the next message, due an interval later
            resp = await bot.client.post(
                "/webhooks/generic",
                json={
                    "incident_id": f"svc{i:02d}-down",
                    "service": f"svc{i:02d}",
                    "status": "resolved",
                },
            )
            assert resp.status_code == 200, resp.text
        await bot.settle()
        assert len(texts(fake_twilio, RAVI)) == before + 1
        async with bot.runtime.store.write() as conn:  # the interval passes
            await conn.execute(
                update(t.outbox)
                .where(t.outbox.c.kind == "storm_digest", t.outbox.c.status == "pending")
                .values(next_attempt_at=utcnow())
            )
        (_, again) = await sent(2)
        assert again.startswith("⚡ Storm: 12 incidents") and "4 resolved" in again

        desk = bot.runtime.router.storms
        desk.clock = lambda: utcnow() + timedelta(seconds=31)  # quiet since, and 8 open
        await desk.tick()

        def ended() -> tuple[list[str], list[str]]:
            after = texts(fake_twilio, RAVI)[before + 2 :]
            return [m for m in after if m.startswith("⚡ Storm over")], [
                m for m in after if m.startswith("🔴 CRITICAL")
            ]

        await bot.wait_for(polled(lambda: [len(x) for x in ended()] == [1, 7]), 30, what="end")
        await bot.settle()
        over, roots = ended()
        assert len(over) == 1 and "4 resolved" in over[0]
        assert sorted(int(r.split()[2][1:]) for r in roots) == sorted(shorts[4:11])


async def test_a_whatsapp_storm_outside_the_24_hour_window_pages_with_the_template(
    bot_config: Callable[..., Config], fake_twilio: FakeTwilio
) -> None:
    outbox_cfg = {"rates": {"whatsapp": {"rate": 10, "burst": 3}}}
    storm_cfg = {"window_s": 0.5}  # a storm: over 8 new incidents for one number
    async with whatsapp_bot(bot_config, fake_twilio, outbox=outbox_cfg, storm=storm_cfg) as bot:
        for i in range(12):
            await fire_wa(bot, service=f"svc{i:02d}")
        await bot.wait_for(polled(lambda: fake_twilio.sent_to(RAVI)), 30, what="the page")
        await bot.settle()
        (page,) = fake_twilio.sent_to(RAVI)  # Ravi has not written: free text may not go
        assert (page.body, page.content_sid) == (None, TEMPLATE)
        variables = dict(page.content_variables or {})
        assert variables.pop("4").startswith("⚡ Storm: 12 incidents in ")
        assert variables == {"1": "#1–#12", "2": "critical", "3": "12 services"}
