"""After an action, a Prometheus-backed service is verified by the alert's own query too."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.observability_servers import FakeHttpServer, serve_prometheus
from tests.payloads import alertmanager_notification

EXPR = 'up{job="checkout"} == 0'


def notification() -> dict[str, Any]:
    return alertmanager_notification(
        {"alertname": "CheckoutDown", "service": "checkout", "severity": "critical"},
        {"summary": "checkout is down"},
        group='{}:{alertname="CheckoutDown"}',
        fingerprint="c0ffee00c0ffee00",
        generator_url=f"http://prometheus:9090/graph?g0.expr={quote(EXPR)}&g0.tab=1",
    )


async def restart_and_wait(bot: RunningBot) -> tuple[str, list[str]]:
    incident_id = (await bot.client.post("/webhooks/alertmanager", json=notification())).json()[
        "incidents"
    ][0]
    await bot.settle()
    await bot.client.post(f"/api/incidents/{incident_id}/messages", json={"text": "restart it"})

    async def outcome() -> list[str]:
        detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
        texts = [m["text"] for m in detail["messages"] if m["author"] == "opsbot"]
        return [t for t in texts if t.startswith(("✅ restart", "❌ restart"))]

    said = await bot.wait_for(outcome, timeout_s=20, what="the restart's outcome")
    detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    return detail["status"], said


@pytest.mark.parametrize("still_firing", [True, False], ids=["query-still-matches", "cleared"])
async def test_the_alert_query_decides_whether_the_restart_worked(
    bot_config: Callable[..., Config], obs_http: FakeHttpServer, still_firing: bool
) -> None:
    series = [{"metric": {"job": "checkout"}, "value": [time.time(), "0"]}]
    prometheus = serve_prometheus(obs_http, {EXPR: series if still_firing else []})
    cfg = bot_config(
        services={
            "checkout": {
                "match": {"service": "checkout"},
                "metrics": {"prometheus": prometheus},
                "actions": {"restart": {"shell": ["true"]}},
                "approval": "none",
                "verify_timeout_s": 1.0,
            }
        }
    )
    async with run_bot(cfg) as bot:
        status, said = await restart_and_wait(bot)
    (line,) = said
    if still_firing:
        assert line.startswith("❌ restart checkout")
        assert "the alert's query still matches 1 series" in line
        assert status == "triggered"
    else:
        assert line.startswith("✅ restart checkout")
        assert "Verified healthy after" in line
        assert status == "resolved"
