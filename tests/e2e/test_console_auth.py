"""Console identity over HTTP: bound to loopback the local user needs no login; bound to another
address the API needs a session from the console token and state changes need the CSRF token;
the chaos switch takes the admin token."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from bot.app.config import Config
from bot.app.passwords import hash_password
from bot.app.server.console import CSRF_COOKIE, SESSION_COOKIE
from tests.e2e.test_actions_flow import (
    action_rows,
    audit_log,
    bot_says_next,
    gated,
    lines_of,
    prompts,
    python_action,
    service,
)
from tests.e2e.test_actions_flow import open_incident as actions_incident
from tests.fakes.bot_server import RunningBot, run_bot

__all__ = ["gated"]  # a fixture from test_actions_flow, used here by name

CONSOLE_TOKEN = "console-token-for-tests-0001"
ADMIN_TOKEN = "admin-token-for-tests-0001"


def public_config(bot_config: Callable[..., Config]) -> Config:
    """Configured for every interface; the fixture still listens on 127.0.0.1 only."""
    return bot_config(
        http={"host": "0.0.0.0"}, console={"token": CONSOLE_TOKEN}, admin={"token": ADMIN_TOKEN}
    )


async def open_incident(bot: RunningBot, sample_am: dict[str, Any]) -> str:
    resp = await bot.client.post("/webhooks/alertmanager", json=sample_am)
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    await bot.settle()  # posted to its console thread, as an operator would see it
    return incident_id


async def log_in(client: httpx.AsyncClient) -> str:
    """Sign in like the console does; returns the CSRF token the page would echo."""
    resp = await client.post("/api/login", json={"token": CONSOLE_TOKEN})
    assert resp.status_code == 200, resp.text
    assert client.cookies.get(SESSION_COOKIE)
    csrf = client.cookies.get(CSRF_COOKIE)
    assert csrf
    return csrf


async def test_off_loopback_the_api_needs_a_session(
    bot_config: Callable[..., Config], sample_am: dict[str, Any]
) -> None:
    async with run_bot(public_config(bot_config)) as bot:
        incident_id = await open_incident(bot, sample_am)
        assert (await bot.client.get("/api/incidents")).status_code == 401
        assert (await bot.client.get(f"/api/incidents/{incident_id}")).status_code == 401
        assert (await bot.client.get("/api/events")).status_code == 401

        for guess in ("not-the-token", "tökén"):
            wrong = await bot.client.post("/api/login", json={"token": guess})
            assert wrong.status_code == 401, wrong.text
        assert SESSION_COOKIE not in bot.client.cookies

        await log_in(bot.client)
        listed = await bot.client.get("/api/incidents")
        assert listed.status_code == 200, listed.text
        assert [i["id"] for i in listed.json()["incidents"]] == [incident_id]

        forged = httpx.AsyncClient(base_url=bot.url, cookies={SESSION_COOKIE: "f" * 64})
        async with forged:
            assert (await forged.get("/api/incidents")).status_code == 401


async def test_off_loopback_state_changes_need_the_csrf_token(
    bot_config: Callable[..., Config], sample_am: dict[str, Any]
) -> None:
    async with run_bot(public_config(bot_config)) as bot:
        incident_id = await open_incident(bot, sample_am)
        messages = f"/api/incidents/{incident_id}/messages"
        assert (await bot.client.post(messages, json={"text": "ack"})).status_code == 401

        csrf = await log_in(bot.client)
        missing = await bot.client.post(messages, json={"text": "ack"})
        assert missing.status_code == 403, missing.text
        wrong = await bot.client.post(
            messages, json={"text": "ack"}, headers={"X-CSRF-Token": csrf + "x"}
        )
        assert wrong.status_code == 403, wrong.text
        said = await bot.client.post(messages, json={"text": "ack"}, headers={"X-CSRF-Token": csrf})
        assert said.status_code == 202, said.text

        await bot.settle()
        detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
        assert detail["status"] == "acknowledged"
        assert [m["text"] for m in detail["messages"] if m["kind"] == "operator"] == ["ack"]


async def test_on_loopback_the_local_user_needs_no_login(
    bot: RunningBot, sample_am: dict[str, Any]
) -> None:
    incident_id = await open_incident(bot, sample_am)
    assert (await bot.client.get("/api/incidents")).status_code == 200
    said = await bot.client.post(f"/api/incidents/{incident_id}/messages", json={"text": "ack"})
    assert said.status_code == 202, said.text
    chaos = await bot.client.post("/admin/chaos", json={"enabled": True})
    assert chaos.status_code == 200, chaos.text
    assert (await bot.client.get("/admin/chaos")).json() == {"enabled": True}


async def test_on_loopback_another_host_name_is_not_the_local_user(
    bot: RunningBot, sample_am: dict[str, Any]
) -> None:
    """A web page whose name was rebound to 127.0.0.1 speaks to the bot as its own origin."""
    incident_id = await open_incident(bot, sample_am)
    rebound = {"Host": f"attacker.example:{bot.runtime.cfg.http.port}"}
    assert (await bot.client.get("/api/incidents", headers=rebound)).status_code == 401
    said = await bot.client.post(
        f"/api/incidents/{incident_id}/messages", json={"text": "restart it"}, headers=rebound
    )
    assert said.status_code == 401
    chaos = await bot.client.post("/admin/chaos", json={"enabled": True}, headers=rebound)
    assert chaos.status_code == 401
    assert not await bot.runtime.chaos.get()
    for local in ("localhost", "127.0.0.1", "[::1]"):
        host = {"Host": f"{local}:{bot.runtime.cfg.http.port}"}
        assert (await bot.client.get("/api/incidents", headers=host)).status_code == 200


async def test_without_an_admin_token_a_bearer_header_is_no_way_around_the_login(
    bot_config: Callable[..., Config],
) -> None:
    cfg = bot_config(http={"host": "0.0.0.0"}, console={"token": CONSOLE_TOKEN})
    async with run_bot(cfg) as bot:
        sneaky = await bot.client.post(
            "/admin/chaos",
            json={"enabled": True},
            headers={"Authorization": "Bearer anything"},
            cookies={SESSION_COOKIE: "anything"},
        )
        assert sneaky.status_code == 401
        assert not await bot.runtime.chaos.get()

        csrf = await log_in(bot.client)
        chaos = await bot.client.post(
            "/admin/chaos", json={"enabled": True}, headers={"X-CSRF-Token": csrf}
        )
        assert chaos.status_code == 200, chaos.text
        assert await bot.runtime.chaos.get()


async def test_the_chaos_switch_needs_the_admin_token(
    bot_config: Callable[..., Config],
) -> None:
    async with run_bot(public_config(bot_config)) as bot:
        switch = {"enabled": True}
        assert (await bot.client.post("/admin/chaos", json=switch)).status_code == 401
        wrong = await bot.client.post(
            "/admin/chaos", json=switch, headers={"Authorization": "Bearer not-the-token"}
        )
        assert wrong.status_code == 401
        assert not await bot.runtime.chaos.get()

        right = await bot.client.post(
            "/admin/chaos", json=switch, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert right.status_code == 200, right.text
        assert right.json() == {"enabled": True}
        assert await bot.runtime.chaos.get()


# ---- behind a proxy, and tokens from loopback -----------------------------------------------

PROXIED = (
    {"X-Forwarded-For": "203.0.113.9"},
    {"Forwarded": "for=203.0.113.9;proto=https"},
    {"X-Forwarded-Host": "opsbot.example.com"},
    {"X-Real-IP": "203.0.113.9"},
)


async def test_a_proxy_on_loopback_keeping_the_host_is_not_the_local_user(
    bot: RunningBot, sample_am: dict[str, Any]
) -> None:
    """nginx's default `Host: $proxy_host` makes an internet request look like 127.0.0.1."""
    incident_id = await open_incident(bot, sample_am)
    for headers in PROXIED:
        for path in ("/api/incidents", f"/api/incidents/{incident_id}", "/api/events", "/api/me"):
            resp = await bot.client.get(path, headers=headers)
            assert resp.status_code == 401, (path, headers, resp.text)
        said = await bot.client.post(
            f"/api/incidents/{incident_id}/messages", json={"text": "ack"}, headers=headers
        )
        assert said.status_code == 401, said.text
        chaos = await bot.client.post("/admin/chaos", json={"enabled": True}, headers=headers)
        assert chaos.status_code == 401, chaos.text
    assert not await bot.runtime.chaos.get()
    detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert detail["status"] == "triggered"
    assert (await bot.client.get("/api/me")).json()["user"] == "console"


async def test_a_configured_admin_token_is_required_from_loopback_too(
    bot_config: Callable[..., Config],
) -> None:
    async with run_bot(bot_config(admin={"token": ADMIN_TOKEN})) as bot:
        switch = {"enabled": True}
        refused = await bot.client.post("/admin/chaos", json=switch)
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = await bot.client.post(
            "/admin/chaos", json=switch, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        assert not await bot.runtime.chaos.get()
        assert (await bot.client.get("/admin/chaos")).json() == {"enabled": False}

        basic = await bot.client.post(
            "/admin/chaos", json=switch, headers={"Authorization": "Basic b3BzOmJvdA=="}
        )
        assert basic.status_code == 401
        right = await bot.client.post(
            "/admin/chaos", json=switch, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert right.status_code == 200, right.text
        assert await bot.runtime.chaos.get()


# ---- people, sessions ------------------------------------------------------------------------

RAVI_PASSWORD, ASHA_TOKEN = "ravi's long passphrase", "asha-console-token-0001"
PEOPLE = [
    {
        "name": "Ravi Kumar",
        "aliases": ["ravi"],
        "email": "ravi@example.com",
        "roles": ["responder", "approver"],
        "console": {"password_hash": hash_password(RAVI_PASSWORD)},
    },
    {
        "name": "Asha Rao",
        "aliases": ["asha"],
        "roles": ["responder", "approver", "admin"],
        "console": {"token": ASHA_TOKEN},
    },
]


def people_config(bot_config: Callable[..., Config], **overrides: Any) -> Config:
    return bot_config(people=PEOPLE, **overrides)


async def sign_in(client: httpx.AsyncClient, **body: str) -> str:
    resp = await client.post("/api/login", json=body)
    assert resp.status_code == 200, resp.text
    csrf = client.cookies.get(CSRF_COOKIE)
    assert csrf
    return csrf


async def test_behind_a_trusted_proxy_the_client_and_the_user_come_from_its_headers(
    bot_config: Callable[..., Config],
) -> None:
    cfg = people_config(
        bot_config,
        http={"trusted_proxies": ["127.0.0.0/8"]},
        console={"identity_header": "X-Forwarded-User"},
    )
    async with run_bot(cfg) as bot:
        via_proxy = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-User": "ravi"}
        me = await bot.client.get("/api/me", headers=via_proxy)
        assert me.status_code == 200, me.text
        assert me.json() == {
            "user": "Ravi Kumar",
            "name": "Ravi Kumar",
            "roles": ["approver", "responder"],
            "via": "proxy",
            "client": "203.0.113.9",
        }
        # No user header: the proxy's request is not the local user's.
        anonymous = await bot.client.get("/api/me", headers={"X-Forwarded-For": "203.0.113.9"})
        assert anonymous.status_code == 401
        reserved = {**via_proxy, "X-Forwarded-User": "console"}
        assert (await bot.client.get("/api/me", headers=reserved)).status_code == 401


async def test_an_untrusted_peer_names_neither_client_nor_user(
    bot_config: Callable[..., Config],
) -> None:
    cfg = people_config(bot_config, console={"identity_header": "X-Forwarded-User"})
    async with run_bot(cfg) as bot:
        claims = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-User": "ravi"}
        assert (await bot.client.get("/api/me", headers=claims)).status_code == 401
        await sign_in(bot.client, user="ravi", password=RAVI_PASSWORD)
        me = (await bot.client.get("/api/me", headers=claims)).json()
        assert (me["user"], me["via"], me["client"]) == ("Ravi Kumar", "password", "127.0.0.1")


async def test_sessions_are_signed_and_expire(bot_config: Callable[..., Config]) -> None:
    secret = "session-secret-for-tests-0001"
    cfg = people_config(bot_config, http={"host": "0.0.0.0"}, console={"session_secret": secret})
    async with run_bot(cfg) as bot:
        for wrong in ({"user": "ravi", "password": "guess"}, {"user": "nobody", "password": "x"}):
            assert (await bot.client.post("/api/login", json=wrong)).status_code == 401
        await sign_in(bot.client, user="ravi", password=RAVI_PASSWORD)
        genuine = bot.client.cookies[SESSION_COOKIE]
        assert (await bot.client.get("/api/me")).json()["user"] == "Ravi Kumar"

        class Backdated(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(time.time()) - cfg.console.session_ttl_s - 60

        payload = URLSafeTimedSerializer(secret, salt="opsbot-console-session").loads(genuine)
        forgeries = {
            "another key": URLSafeTimedSerializer("guessed", salt="opsbot-console-session").dumps(
                payload
            ),
            "expired": URLSafeTimedSerializer(
                secret, salt="opsbot-console-session", signer=Backdated
            ).dumps(payload),
            "tampered": genuine.replace(genuine[5], "A" if genuine[5] != "A" else "B", 1),
            "unsigned": genuine.rsplit(".", 2)[0],
        }
        for what, cookie in forgeries.items():
            async with httpx.AsyncClient(
                base_url=bot.url, cookies={SESSION_COOKIE: cookie}
            ) as forged:
                assert (await forged.get("/api/incidents")).status_code == 401, what

    # A new password ends the sessions of the old one.
    people = [{**PEOPLE[0], "console": {"password_hash": hash_password("new")}}, PEOPLE[1]]
    cfg = bot_config(people=people, http={"host": "0.0.0.0"}, console={"session_secret": secret})
    async with (
        run_bot(cfg) as bot,
        httpx.AsyncClient(base_url=bot.url, cookies={SESSION_COOKIE: genuine}) as old,
    ):
        assert (await old.get("/api/incidents")).status_code == 401


async def test_two_person_approval_in_the_console_needs_two_signed_in_people(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    script, gate, runs = gated
    gate.touch()
    restart = python_action(script, str(gate), str(runs))
    cfg = people_config(
        bot_config, services={"checkout": service({"restart": restart}, approval="two_person")}
    )
    async with (
        run_bot(cfg) as bot,
        httpx.AsyncClient(base_url=bot.url) as ravi,
        httpx.AsyncClient(base_url=bot.url) as asha,
    ):
        incident_id = await actions_incident(bot)
        ravi_csrf = await sign_in(ravi, user="ravi", password=RAVI_PASSWORD)
        asha_csrf = await sign_in(asha, token=ASHA_TOKEN)
        base = f"/api/incidents/{incident_id}"

        asked = await ravi.post(
            f"{base}/messages", json={"text": "restart it"}, headers={"X-CSRF-Token": ravi_csrf}
        )
        assert asked.status_code == 202, asked.text
        await bot.settle()
        (prompt,) = await prompts(bot, incident_id)
        assert prompt["text"].startswith("🔐 @ravi asks to restart checkout.")
        approve = prompt["buttons"][0]["action_id"]
        click = {"action_id": approve, "value": approve.partition(":")[2]}

        own = await ravi.post(f"{base}/buttons", json=click, headers={"X-CSRF-Token": ravi_csrf})
        assert own.status_code == 202, own.text
        said = await bot_says_next(bot, incident_id)
        assert any("someone other than the requester must approve" in s for s in said), said
        assert lines_of(runs) == []

        other = await asha.post(f"{base}/buttons", json=click, headers={"X-CSRF-Token": asha_csrf})
        assert other.status_code == 202, other.text
        said = await bot_says_next(bot, incident_id)
        assert "✅ Approved by @asha: restarting checkout…" in said
        assert len(lines_of(runs)) == 1

        audit = [
            (actor, decision) for actor, _, _, decision, _ in await audit_log(bot, incident_id)
        ]
        assert audit[:3] == [
            ("Ravi Kumar", "pending_approval"),
            ("Ravi Kumar", "refused"),
            ("Asha Rao", "approved"),
        ]
        (row,) = await action_rows(bot, incident_id)
        assert (row["requested_by"], row["approved_by"]) == ("ravi", "asha")
