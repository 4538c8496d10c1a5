"""Console identity over HTTP: bound to loopback the local user needs no login; bound to another
address the API needs a session from the console token and state changes need the CSRF token;
the chaos switch takes the admin token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from bot.app.config import Config
from bot.app.server.console import CSRF_COOKIE, SESSION_COOKIE
from tests.fakes.bot_server import RunningBot, run_bot

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
