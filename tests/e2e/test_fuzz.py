"""Hostile input on every endpoint of the served bot: schemathesis cases from the OpenAPI schema
FastAPI serves, and arbitrary JSON and bytes at every POST route (webhooks and chat callbacks
declare no body schema). No answer may be a 5xx, nor carry a traceback."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app.config import Config
from tests.fakes.bot_server import run_bot
from tests.fakes.slack_api import FakeSlack, slack_settings
from tests.fakes.twilio_api import FakeTwilio, whatsapp_settings

TOKEN = "fuzz-token-0001"  # both the webhook and the admin token: every route is reachable
EXAMPLES = 12  # per operation, and per POST route for raw bodies
STREAMING = {"/api/events"}  # never ends by design; covered by test_console_events
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI failures reproduce
    database=None,
    suppress_health_check=list(HealthCheck),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "application/xml"]
)


def sound(resp: httpx.Response | Any, what: str) -> None:
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:300]}"
    assert "Traceback" not in resp.text, f"{what}: {resp.text[:300]}"


def fuzz_schema(schema: dict[str, Any], url: str) -> int:
    """schemathesis cases for every operation; returns how many operations were fuzzed."""
    api = schemathesis.openapi.from_dict(schema)
    operations = [op.ok() for op in api.get_all_operations() if op.ok().path not in STREAMING]
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            resp = case.call(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            sound(resp, f"{case.method} {case.formatted_path}")

        check()
    return len(operations)


def fuzz_post(client: httpx.Client, path: str) -> None:
    @FUZZ
    @given(
        body=JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200),
        ctype=CONTENT_TYPES,
        auth=st.booleans(),
    )
    def check(body: bytes, ctype: str, auth: bool) -> None:
        headers = {"Content-Type": ctype} if ctype else {}
        if auth:
            headers["Authorization"] = f"Bearer {TOKEN}"
        sound(client.post(path, content=body, headers=headers), f"POST {path}")

    check()


def fuzz_bodies(paths: list[str], url: str) -> None:
    """Arbitrary JSON values, deep nesting and bytes, with and without the token."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for path in paths:
            fuzz_post(client, path)
            deep = b"[" * 5000 + b"]" * 5000
            for ctype in ("application/json", "text/plain"):
                resp = client.post(
                    path,
                    content=deep,
                    headers={"Content-Type": ctype, "Authorization": f"Bearer {TOKEN}"},
                )
                sound(resp, f"POST {path} nested 5000 deep")


async def test_no_endpoint_answers_5xx_or_a_traceback(
    bot_config: Callable[..., Config], fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    cfg = bot_config(
        webhooks={"token": TOKEN},
        admin={"token": TOKEN},
        slack=slack_settings(fake_slack),
        whatsapp=whatsapp_settings(fake_twilio),
    )
    async with run_bot(cfg) as bot:
        await bot.client.post(
            "/webhooks/generic",
            json={"incident_id": "fz", "service": "checkout", "alert_type": "Down"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )  # one incident, so ids and short ids sometimes hit something
        schema = (await bot.client.get("/openapi.json")).json()
        # Routed by FastAPI (in the schema) and mounted by adapters (Bolt's, Twilio's: not).
        mounted = [
            getattr(r, "path", "")
            for r in bot.app.routes
            if "POST" in (getattr(r, "methods", None) or ())
        ]
        posts = sorted(
            {
                re.sub(r"\{[^}]+\}", "fuzz", path)
                for path in [*(p for p, ops in schema["paths"].items() if "post" in ops), *mounted]
            }
        )
        fuzzed = await asyncio.to_thread(fuzz_schema, schema, bot.url)
        await asyncio.to_thread(fuzz_bodies, posts, bot.url)
    assert fuzzed >= 15
    assert {"/webhooks/alertmanager", "/webhooks/sns", "/slack/events", "/twilio/whatsapp"} <= set(
        posts
    )


async def test_every_route_bounds_body_size_and_json_depth(
    bot_config: Callable[..., Config], fake_slack: FakeSlack
) -> None:
    cfg = bot_config(
        webhooks={"token": TOKEN},
        admin={"token": TOKEN},
        slack=slack_settings(fake_slack),
        http={"max_body_bytes": 64 * 1024, "max_json_depth": 16},
    )
    deep = json.dumps({"text": json.loads("[" * 17 + "]" * 17)})
    shallow = json.dumps({"text": json.loads("[" * 15 + "]" * 15)})
    big = json.dumps({"text": "x" * 70 * 1024})
    async with run_bot(cfg) as bot:
        for path in (
            "/api/login",
            "/api/incidents/1/messages",
            "/admin/chaos",
            "/webhooks/generic",
            "/webhooks/alertmanager",  # the webhooks check nesting where they parse
            "/webhooks/sns",
            "/slack/events",
        ):
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
            too_deep = await bot.client.post(path, content=deep, headers=headers)
            assert too_deep.status_code == 400, (path, too_deep.text)
            assert too_deep.json() == {"error": "JSON nested deeper than 16 levels"}
            within = await bot.client.post(path, content=shallow, headers=headers)
            assert "nested deeper" not in within.text, (path, within.text)
            too_big = await bot.client.post(path, content=big, headers=headers)
            assert too_big.status_code == 413, (path, too_big.text)

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
                for _ in range(70):
                    yield b"x" * 1024

            streamed = await bot.client.post(path, content=chunks(), headers=headers)
            assert streamed.status_code == 413, (path, streamed.text)
