"""Whatever the LLM does, every incident gets a diagnosis in its thread, marked with its layer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.openai_server import (
    BrokenBody,
    Fail,
    FakeOpenAI,
    Hang,
    Scripted,
    closed_port_url,
    reply,
)
from tests.payloads import alertmanager_notification

OOM = "java.lang.OutOfMemoryError: Java heap space"


def notification(group: str) -> dict[str, Any]:
    return alertmanager_notification(
        {"alertname": "HeapHigh", "service": "checkout", "severity": "critical"},
        {"summary": "checkout heap above 95%", "description": OOM},
        group=group,
        fingerprint=f"fp-{group}",
    )


def live_answer() -> str:
    return json.dumps(
        {
            "summary": "checkout runs out of heap",
            "root_cause": "heap exhaustion",
            "category": "memory_leak",
            "evidence": [{"tool": "alert", "quote": OOM}],
            "checks": ["heap dump"],
            "mitigation": "restart",
            "proposed_action": {"action": "none", "service": "checkout"},
            "confidence": 0.8,
        }
    )


def llm_config(bot_config: Callable[..., Config], base_url: str) -> Config:
    provider = {"name": "primary", "base_url": base_url, "api_key": "sk-test", "model": "m"}
    return bot_config(
        llm={"providers": [{**provider, "timeout_s": 1.0}]},
        services={"checkout": {"match": {"service": "checkout"}}},
    )


async def diagnose(bot: RunningBot, group: str) -> dict[str, Any]:
    incident_id = (
        await bot.client.post("/webhooks/alertmanager", json=notification(group))
    ).json()["incidents"][0]

    async def diagnosis() -> dict[str, Any] | None:
        detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
        posted = [m for m in detail["messages"] if m["kind"] == "diagnosis"]
        return posted[-1] if posted else None

    return await bot.wait_for(diagnosis, timeout_s=20, what="a diagnosis in the thread")


FAILURES: dict[str, Scripted | None] = {
    "500": Fail(500),
    "429": Fail(429, retry_after=1),
    "timeout": Hang(seconds=3),
    "not-json": BrokenBody(),
    "invalid-diagnosis": reply("this is not JSON at all"),
    "connection-refused": None,
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_a_failing_llm_still_answers_every_incident_offline(
    bot_config: Callable[..., Config], fake_openai: FakeOpenAI, failure: str
) -> None:
    step = FAILURES[failure]
    fake_openai.default = step
    url = fake_openai.base_url if step is not None else closed_port_url()
    async with run_bot(llm_config(bot_config, url)) as bot:
        message = await diagnose(bot, "g1")
        stats = (await bot.client.get("/stats")).json()
    assert message["diagnosis"]["source"] == "offline"
    assert message["text"].startswith("⚪ Diagnosis (offline")
    assert stats["diagnoses"]["offline"] == 1
    assert stats["user_dropped_count"] == 0


async def test_live_then_chaos_falls_to_the_cached_diagnosis(
    bot_config: Callable[..., Config], fake_openai: FakeOpenAI
) -> None:
    fake_openai.default = reply(live_answer())
    async with run_bot(llm_config(bot_config, fake_openai.base_url)) as bot:
        first = await diagnose(bot, "g1")
        assert first["diagnosis"]["source"] == "live"

        chaos = await bot.client.post("/admin/chaos", json={"enabled": True})
        assert chaos.json() == {"enabled": True}
        asked = len(fake_openai.requests)
        second = await diagnose(bot, "g2")  # same alert signature, another incident
        stats = (await bot.client.get("/stats")).json()

    assert len(fake_openai.requests) == asked  # chaos: no call reached the provider
    assert second["diagnosis"]["source"] == "cache"
    assert second["diagnosis"]["cache_age_s"] is not None
    assert "cached" in second["text"]
    assert stats["diagnoses"]["live"] == 1
    assert stats["diagnoses"]["cache"] == 1
    assert stats["user_dropped_count"] == 0
