"""The leader's schedule on one process (SQLite: it leads from the start): a step slower than
its interval never runs beside itself, and nothing runs once the process stops leading."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app.config import ClusterConfig
from bot.cluster.leader import Leadership
from bot.store import Store
from tests.fakes.demo_service import eventually

INTERVAL_S = 0.05


async def test_a_slow_step_runs_one_at_a_time_and_stops_with_the_leadership(
    tmp_path: Path,
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/leader.db")
    leader = Leadership(store, ClusterConfig(), "solo")
    running, most, runs = 0, 0, 0
    release = asyncio.Event()

    async def slow_step() -> None:
        nonlocal running, most, runs
        running += 1
        runs += 1
        most = max(most, running)
        try:
            await release.wait()  # far longer than the interval: later runs are due meanwhile
        finally:
            running -= 1

    leader.every("slow", INTERVAL_S, slow_step)
    changes: list[bool] = []

    async def watch(leading: bool) -> None:
        changes.append(leading)

    leader.on_change(watch)
    task = asyncio.create_task(leader.run())
    try:
        await eventually(lambda: asyncio.sleep(0, result=runs == 1), 10)
        await asyncio.sleep(INTERVAL_S * 10)  # ten intervals pass while the first run holds
        assert (running, most, runs) == (1, 1, 1)
        release.set()
        await eventually(lambda: asyncio.sleep(0, result=runs >= 2), 10)  # the schedule goes on
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    after = runs
    await asyncio.sleep(INTERVAL_S * 5)
    await store.close()
    assert most == 1
    assert runs == after  # no step once the process stopped leading
    assert changes == [True, False]
