"""Two real `opsbot run` replicas on one PostgreSQL database (a fresh one per test).

A replica killed mid-diagnosis and mid-action: the other finishes the diagnosis once and says
the action's outcome is unknown once; a restarting replica leaves the other's action alone; the
leader killed: approvals still expire and escalation steps still page, each once, and the next
leader holds the Discord gateway (one session at a time); a console on one replica sees the
other's events live; replicas starting together migrate once; the
database cut off for 20 s under load: 503s meanwhile, nothing acknowledged lost; a repeat
of a stored notification answered as a duplicate while the database is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.fakes import discord_api
from tests.fakes.action_servers import RecordingHttp
from tests.fakes.bot_server import free_port
from tests.fakes.demo_service import eventually
from tests.fakes.discord_api import FakeDiscord, discord_settings
from tests.fakes.openai_server import Fail, FakeOpenAI, Hang, Step, reply
from tests.fakes.processes import BotProcess, BotProcesses
from tests.fakes.slack_api import FakeSlack, slack_settings
from tests.payloads import alertmanager_notification

CHANNEL = "C0OPS"
RAVI, MEI = "U024BE7LH", "U0MEI0001"
ESCALATE_AFTER_S = 10
TAKEOVER_S = 15.0  # the bound for a leader's death
SETTLE_S = 45.0
OUTAGE_S = 20.0  # the outage, under load
FAST_CLUSTER = {"heartbeat_s": 0.5, "dead_after_s": 3, "tick_s": 1}
LIVE = reply(
    {
        "summary": "checkout is out of heap memory",
        "root_cause": "The heap fills until the JVM throws OutOfMemoryError.",
        "category": "memory_leak",
        "evidence": [{"tool": "alert", "quote": "checkout down"}],
        "checks": ["heap dump"],
        "mitigation": "restart, then bound the cache",
        "proposed_action": {"action": "none"},
        "confidence": 0.8,
    }
)


def base_config(pg_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "storage": {"url": pg_url},
        "cluster": FAST_CLUSTER,
        "outbox": {"lease_s": 3},
        **extra,
    }


async def incident(client: httpx.AsyncClient, bot: BotProcess, incident_id: str) -> Any:
    return (await client.get(f"{bot.url}/api/incidents/{incident_id}")).json()


async def open_incident(client: httpx.AsyncClient, bot: BotProcess, name: str, service: str) -> str:
    resp = await client.post(
        f"{bot.url}/webhooks/generic",
        json={"incident_id": name, "service": service, "message": f"{service} down"},
    )
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    return str(incident_id)


async def say(client: httpx.AsyncClient, bot: BotProcess, incident_id: str, text: str) -> None:
    resp = await client.post(f"{bot.url}/api/incidents/{incident_id}/messages", json={"text": text})
    assert resp.status_code == 202, resp.text


async def settled(client: httpx.AsyncClient, bot: BotProcess) -> bool:
    stats = (await client.get(f"{bot.url}/stats")).json()
    return (stats["outbox"]["pending"], stats["outbox"]["failed"]) == (0, 0)


def pages(fake: FakeSlack, user: str) -> list[str]:
    """Incident cards the bot sent to a person's direct messages (not replies in their threads)."""
    return [
        c.params["text"]
        for c in fake.calls("chat.postMessage")
        if c.params["channel"] == user and not c.params.get("thread_ts")
    ]


def is_investigation(body: dict[str, Any]) -> bool:
    return str(body["messages"][0]["content"]).startswith("You are opsbot, a senior")


async def test_a_replica_killed_mid_diagnosis_and_mid_action(
    pg_url: str,
    bot_processes: BotProcesses,
    fake_slack: FakeSlack,
    fake_openai: FakeOpenAI,
    recording_http: RecordingHttp,
) -> None:
    def llm(body: dict[str, Any]) -> Step:
        if not is_investigation(body):
            return Fail(400)  # intents fall back to the grammar
        investigations = sum(1 for b in fake_openai.requests if is_investigation(b))
        return Hang(120) if investigations == 1 else LIVE  # the first outlives its replica

    fake_openai.default = llm
    recording_http.respond("/restart", 200, '{"ok": true}', delay_s=120)
    config = base_config(
        pg_url,
        slack=slack_settings(fake_slack),
        routes=[{"match": {}, "slack": [CHANNEL]}],
        llm={
            "providers": [
                {
                    "name": "primary",
                    "base_url": fake_openai.base_url,
                    "api_key": "sk-fake",
                    "model": "fake",
                    "timeout_s": 150,
                }
            ],
            "investigation_timeout_s": 150,
            "breaker_failures": 100,
        },
        services={
            "checkout": {
                "match": {"service": "checkout"},
                "approval": "none",
                "actions": {
                    "restart": {"http": {"url": f"{recording_http.url}/restart", "timeout_s": 150}}
                },
            }
        },
    )
    a = await bot_processes.start("replica-a", config)
    await bot_processes.ready(a)
    async with httpx.AsyncClient(timeout=10) as client:
        incident_id = await open_incident(client, a, "crash-1", "checkout")

        async def diagnosing() -> bool:
            return any(is_investigation(b) for b in fake_openai.requests)

        await eventually(diagnosing, SETTLE_S)
        await say(client, a, incident_id, "restart it")

        async def action_running() -> bool:
            actions = (await incident(client, a, incident_id))["actions"]
            return bool(recording_http.calls("POST")) and actions[0]["state"] == "running"

        await eventually(action_running, SETTLE_S)

        b = await bot_processes.start("replica-b", config)
        await bot_processes.ready(b)
        await b.kill()  # B restarts: its start-up recovery must leave A's running action alone
        b = await bot_processes.start("replica-b", config)
        await bot_processes.ready(b)
        (action,) = (await incident(client, b, incident_id))["actions"]
        assert action["state"] == "running"

        await a.kill()

        def thread_texts() -> list[str]:
            return [c.params.get("text", "") for c in fake_slack.calls("chat.postMessage")]

        async def recovered() -> bool:
            said = " ".join(thread_texts())
            return "outcome unknown" in said and "Diagnosis (live" in said

        await eventually(recovered, SETTLE_S)
        await eventually(lambda: settled(client, b), SETTLE_S)
        detail = await incident(client, b, incident_id)

    texts = thread_texts()
    assert [t for t, n in Counter(texts).items() if n > 1] == []  # nothing posted twice
    assert sum("outcome unknown" in t for t in texts) == 1
    assert sum("Diagnosis (live" in t for t in texts) == 1
    assert len(recording_http.calls("POST")) == 1  # the action never ran again
    assert [a["state"] for a in detail["actions"]] == ["unknown"]
    assert [d["source"] for d in detail["diagnoses"]] == ["live"]
    assert sum(is_investigation(b) for b in fake_openai.requests) == 2  # A's, then B's


async def test_the_leaders_death_hands_approval_expiry_and_escalation_to_the_other_replica(
    pg_url: str, bot_processes: BotProcesses, fake_slack: FakeSlack
) -> None:
    services = ("checkout", "cart", "search")
    config = base_config(
        pg_url,
        slack=slack_settings(fake_slack),
        routes=[{"match": {}, "slack": [CHANNEL]}],
        people=[
            {"name": "Ravi Kumar", "aliases": ["ravi"], "slack": RAVI},
            {"name": "Mei Chen", "aliases": ["mei"], "slack": MEI},
        ],
        oncall={
            "tick_s": 1,
            "policies": {
                "all": {
                    "steps": [  # Ravi at once; Mei once Ravi's step has waited, after the kill
                        {"notify": ["ravi"], "channels": ["slack"], "wait_s": ESCALATE_AFTER_S},
                        {"notify": ["mei"], "channels": ["slack"], "wait_s": 3600},
                    ]
                }
            },
        },
        policy={"approval_timeout_s": 6},
        services={
            name: {
                "match": {"service": name},
                "approval": "approve",
                "actions": {"restart": {"shell": ["true"]}},
            }
            for name in services
        },
    )
    a = await bot_processes.start("replica-a", config)
    await bot_processes.ready(a)
    async with httpx.AsyncClient(timeout=10) as client:

        async def leader(bot: BotProcess) -> bool:
            ready = await bot.readyz(client)
            return bool(ready and ready["leader"])

        await eventually(lambda: leader(a), TAKEOVER_S)
        b = await bot_processes.start("replica-b", config)
        await bot_processes.ready(b)
        assert not await leader(b)

        ids = [await open_incident(client, a, f"gate-{s}", s) for s in services]
        for incident_id in ids:
            await say(client, a, incident_id, "restart it")

        async def all_pending() -> bool:
            details = [await incident(client, a, i) for i in ids]
            return all(d["actions"] and d["actions"][0]["state"] for d in details)

        await eventually(all_pending, SETTLE_S)
        states = [(await incident(client, a, i))["actions"][0]["state"] for i in ids]
        assert states == ["pending_approval"] * 3
        await eventually(
            lambda: asyncio.sleep(0, result=len(pages(fake_slack, RAVI)) >= 3), SETTLE_S
        )
        assert pages(fake_slack, MEI) == []  # the second step falls due after the kill
        await a.kill()
        killed_at = asyncio.get_running_loop().time()

        await eventually(lambda: leader(b), TAKEOVER_S)

        def expired(detail: dict[str, Any]) -> list[str]:
            return [
                m["text"] for m in detail["messages"] if "expired without approval" in m["text"]
            ]

        async def all_done() -> bool:
            details = [await incident(client, b, i) for i in ids]
            return all(expired(d) for d in details) and len(pages(fake_slack, MEI)) >= 3

        await eventually(all_done, TAKEOVER_S)
        took = asyncio.get_running_loop().time() - killed_at
        await eventually(lambda: settled(client, b), SETTLE_S)
        details = [await incident(client, b, i) for i in ids]

    assert took <= TAKEOVER_S
    assert [len(expired(d)) for d in details] == [1, 1, 1]  # no step twice
    assert [d["actions"][0]["state"] for d in details] == ["expired"] * 3
    assert len(pages(fake_slack, RAVI)) == 3 and len(pages(fake_slack, MEI)) == 3
    escalated = [[e for e in d["timeline"] if e["kind"] == "escalated"] for d in details]
    assert [len(steps) for steps in escalated] == [2, 2, 2]


async def test_only_the_leader_holds_the_discord_gateway_and_the_next_leader_takes_it(
    pg_url: str, bot_processes: BotProcesses, fake_discord: FakeDiscord
) -> None:
    config = base_config(
        pg_url,
        discord=discord_settings(fake_discord),
        routes=[{"match": {}, "discord": [discord_api.INCIDENTS]}],
        people=[
            {
                "name": "Ravi Kumar",
                "aliases": ["ravi"],
                "discord": discord_api.RAVI,
                "roles": ["responder"],
            }
        ],
    )
    a = await bot_processes.start("replica-a", config)
    await bot_processes.ready(a)
    await fake_discord.wait_ready(TAKEOVER_S)
    b = await bot_processes.start("replica-b", config)
    await bot_processes.ready(b)
    async with httpx.AsyncClient(timeout=10) as client:
        incident_id = await open_incident(client, b, "gateway-1", "checkout")

        async def posted() -> list[discord_api.DiscordMessage]:
            return fake_discord.roots(discord_api.INCIDENTS)

        (root,) = await eventually(posted, SETTLE_S)  # over REST, by either replica
        assert (fake_discord.connected, fake_discord.identifies) == (1, 1)  # A's session only

        await a.kill()

        async def taken_over() -> bool:
            return (fake_discord.connected, fake_discord.identifies) == (1, 2)

        await eventually(taken_over, TAKEOVER_S)  # B, now the leader, holds a new session
        await fake_discord.wait_ready()
        await fake_discord.say(root.id, "ack")  # what people write reaches B

        async def acknowledged() -> bool:
            return (await incident(client, b, incident_id))["status"] == "acknowledged"

        await eventually(acknowledged, SETTLE_S)
    assert fake_discord.connected == 1


async def test_a_console_on_one_replica_shows_what_another_did_live(
    pg_url: str, bot_processes: BotProcesses
) -> None:
    a = await bot_processes.start("replica-a", base_config(pg_url))
    b = await bot_processes.start("replica-b", base_config(pg_url))
    await bot_processes.ready(a, b)
    seen: list[tuple[str, dict[str, Any]]] = []
    connected = asyncio.Event()
    async with httpx.AsyncClient(timeout=None) as client:

        async def watch_b() -> None:
            async with client.stream("GET", f"{b.url}/api/events") as resp:
                connected.set()
                event = ""
                async for line in resp.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        seen.append((event, json.loads(line[6:])))

        watcher = asyncio.create_task(watch_b())
        try:
            await asyncio.wait_for(connected.wait(), TAKEOVER_S)
            incident_id = await open_incident(client, a, "live-1", "checkout")
            await say(client, a, incident_id, "hello from replica A")

            async def shown() -> bool:
                texts = [
                    d["message"]["text"]
                    for e, d in seen
                    if e == "message" and d["incident_id"] == incident_id
                ]
                roots = [d for e, d in seen if e == "incident" and d["id"] == incident_id]
                return "hello from replica A" in texts and bool(roots)

            await eventually(shown, TAKEOVER_S)
        finally:
            watcher.cancel()


async def test_replicas_starting_together_on_an_empty_database_migrate_once(
    pg_url: str, bot_processes: BotProcesses
) -> None:
    info = {"OPSBOT_LOG_LEVEL": "INFO"}
    a, b = await asyncio.gather(
        bot_processes.start("replica-a", base_config(pg_url), info),
        bot_processes.start("replica-b", base_config(pg_url), info),
    )
    await bot_processes.ready(a, b)
    async with httpx.AsyncClient(timeout=10) as client:
        for bot in (a, b):
            await open_incident(client, bot, f"both-{bot.name}", "checkout")
    migrated = [bot.name for bot in (a, b) if '"store.migrated"' in bot.log_text()]
    assert len(migrated) == 1, [a.log_text(), b.log_text()]


class PostgresLink:
    """A TCP proxy in front of PostgreSQL: the database as the replicas see it. `cut()` closes
    the port and drops every connection (the server stays up for everyone else)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}


@pytest.fixture
async def pg_link() -> AsyncIterator[PostgresLink]:
    link = PostgresLink()
    await link.start()
    yield link
    await link.cut()


async def test_a_database_outage_under_load_answers_503_and_loses_nothing(
    pg_url: str, pg_link: PostgresLink, bot_processes: BotProcesses
) -> None:
    linked = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{pg_link.port}")
    a = await bot_processes.start("replica-a", base_config(linked))
    b = await bot_processes.start("replica-b", base_config(linked))
    await bot_processes.ready(a, b)
    acked: list[str] = []
    answers: Counter[int | str] = Counter()
    sending = True
    loop = asyncio.get_running_loop()

    async def sender(client: httpx.AsyncClient, lane: int) -> None:
        n = 0
        while sending:
            bot, name = (a, b)[n % 2], f"load-{lane}-{n}"
            n += 1
            try:
                resp = await client.post(
                    f"{bot.url}/webhooks/generic",
                    json={"incident_id": name, "service": "checkout", "message": "x down"},
                )
            except httpx.TransportError as exc:
                answers[type(exc).__name__] += 1
                continue
            answers[resp.status_code] += 1
            if resp.status_code == 200:
                acked.append(name)

    async with httpx.AsyncClient(timeout=30) as client:

        async def readiness(code: int) -> bool:
            got = [(await client.get(f"{bot.url}/readyz")).status_code for bot in (a, b)]
            return got == [code, code]

        async def acked_at_least(n: int) -> bool:
            return len(acked) >= n

        senders = [asyncio.create_task(sender(client, lane)) for lane in range(3)]
        try:
            await eventually(lambda: acked_at_least(20), SETTLE_S)
            await pg_link.cut()
            cut_at = loop.time()
            before = len(acked)
            await eventually(lambda: readiness(503), TAKEOVER_S)
            await eventually(lambda: asyncio.sleep(0, result=answers[503] >= 10), TAKEOVER_S)
            # Hold the outage under load for the rest of its length (not an assertion), then
            # check it was an outage to the end: still not ready, still answering 503.
            await asyncio.sleep(max(0.0, cut_at + OUTAGE_S - loop.time()))
            late_503s = answers[503]
            await eventually(lambda: asyncio.sleep(0, result=answers[503] > late_503s), SETTLE_S)
            assert await readiness(503)
            down_for = loop.time() - cut_at
            await pg_link.start()
            await eventually(lambda: readiness(200), SETTLE_S)
            await eventually(lambda: acked_at_least(before + 20), SETTLE_S)
        finally:
            sending = False
            await asyncio.gather(*senders)
        await eventually(lambda: settled(client, a), SETTLE_S)

    assert down_for >= OUTAGE_S
    assert set(answers) <= {200, 503}, answers
    admin = await asyncpg.connect(pg_url)
    try:
        stored = {
            json.loads(body)["incident_id"]
            for (body,) in await admin.fetch("SELECT body FROM deliveries")
        }
        incidents = await admin.fetchval("SELECT count(*) FROM incidents")
    finally:
        await admin.close()
    assert set(acked) <= stored  # nothing acknowledged was lost
    assert incidents == len(stored)  # and nothing was applied twice


async def test_a_repeat_of_a_stored_notification_is_a_duplicate_while_the_database_is_down(
    pg_url: str, pg_link: PostgresLink, bot_processes: BotProcesses
) -> None:
    """Alertmanager re-sends what it is not sure was received (and each of an HA pair sends
    its own copy): a replica that stored it answers the repeat without the database."""
    a = await bot_processes.start(
        "replica-a", base_config(pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{pg_link.port}"))
    )
    await bot_processes.ready(a)

    def body(name: str) -> bytes:
        labels = {"alertname": name, "service": "checkout", "severity": "critical"}
        notification = alertmanager_notification(
            labels, {}, group=f'{{}}:{{alertname="{name}"}}', fingerprint=name
        )
        return json.dumps(notification).encode()

    async with httpx.AsyncClient(
        base_url=a.url, timeout=30, headers={"Content-Type": "application/json"}
    ) as client:
        first = await client.post("/webhooks/alertmanager", content=body("CheckoutDown"))
        assert first.status_code == 200 and first.json()["opened"] == 1, first.text
        await pg_link.cut()
        again = await client.post("/webhooks/alertmanager", content=body("CheckoutDown"))
        assert again.status_code == 200, again.text
        assert again.json() == {"status": "duplicate", "incidents": []}
        other = await client.post("/webhooks/alertmanager", content=body("PaymentsDown"))
        assert other.status_code == 503, other.text  # not stored: the sender must retry
