"""The embedded default answers and turns an Alertmanager notification into an incident."""

from tests.fakes.bot_server import RunningBot


async def test_alert_becomes_incident_in_console(bot: RunningBot, sample_am: dict) -> None:
    resp = await bot.client.post("/webhooks/alertmanager", json=sample_am)
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]
    await bot.settle()
    detail = (await bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert detail["status"] == "triggered"
    assert detail["threads"] == [
        {"platform": "console", "channel": "console", "thread_id": incident_id}
    ]
