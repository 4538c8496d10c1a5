"""The console's live stream: events arrive as they happen, and it ends when the bot stops."""

from __future__ import annotations

import asyncio

from tests.fakes.bot_server import RunningBot


async def test_the_stream_carries_new_incidents_and_ends_on_shutdown(
    bot: RunningBot, sample_am: dict
) -> None:
    async with bot.client.stream("GET", "/api/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 2000"

        incident_id = (await bot.client.post("/webhooks/alertmanager", json=sample_am)).json()[
            "incidents"
        ][0]
        await bot.settle()  # posting the console thread root publishes the incident

        async def next_event() -> str:
            async for line in lines:
                if line.startswith("event:"):
                    return line
            return ""

        assert await asyncio.wait_for(next_event(), 10) == "event: incident"
        assert incident_id in await asyncio.wait_for(anext(lines), 10)

        bot.runtime.bus.close()  # what SIGTERM does before uvicorn drains connections

        async def drain() -> int:
            return len([line async for line in lines])  # events still queued, then the end

        await asyncio.wait_for(drain(), 10)  # the server closed the stream on its own
