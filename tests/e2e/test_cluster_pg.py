"""Cluster pieces on the machine's PostgreSQL, in one process: the shared rate budget, the
leader's lock, migrations under their lock, and claims of a replica cut off from the store."""

from __future__ import annotations

import asyncio

from bot.app.config import ClusterConfig
from bot.cluster.leader import Leadership
from bot.queue.budget import SharedBudget, flat
from bot.store import Store
from tests.fakes.demo_service import eventually

FAST = ClusterConfig(heartbeat_s=0.2, dead_after_s=1, tick_s=0.2)


async def test_two_replicas_draw_one_rate_budget_per_destination(pg_url: str) -> None:
    store = await Store.open(pg_url)
    now = [1000.0]
    try:
        a, b = (SharedBudget(store, flat(1.0, 3), clock=lambda: now[0]) for _ in range(2))
        takes = [await (a if i % 2 else b).take("slack:C1") for i in range(4)]
        other = await a.take("slack:C2")
        now[0] += 0.5
        half = await b.take("slack:C1")
        now[0] += 0.5
        refilled = await a.take("slack:C1")
    finally:
        await store.close()
    assert takes == [0.0, 0.0, 0.0, 1.0]  # three between them (the burst), then a 1 s wait
    assert other == 0.0  # destinations have budgets of their own
    assert half == 0.5  # half a token so far
    assert refilled == 0.0


async def test_a_429_holds_the_destination_for_every_replica(pg_url: str) -> None:
    store = await Store.open(pg_url)
    now = [1000.0]
    try:
        a, b = (SharedBudget(store, flat(1.0, 3), clock=lambda: now[0]) for _ in range(2))
        await a.hold("slack:C1", 20)  # A was told Retry-After: 20
        held = await b.take("slack:C1")
        other = await b.take("slack:C2")
        now[0] += 20
        after = await b.take("slack:C1")
    finally:
        await store.close()
    assert held == 20.0 and other == 0.0 and after == 0.0


async def test_one_leader_at_a_time_and_another_takes_over_when_it_goes(pg_url: str) -> None:
    store = await Store.open(pg_url)
    ran: list[str] = []
    leaders = [Leadership(store, FAST, name) for name in ("a", "b")]
    for leader in leaders:

        async def step(name: str = leader.replica_id) -> None:
            ran.append(name)

        leader.every("step", FAST.tick_s, step)
    tasks = [asyncio.create_task(leader.run()) for leader in leaders]
    try:

        async def one_leads() -> list[str]:
            return [x.replica_id for x in leaders if x.is_leader]

        (first,) = await eventually(one_leads, 10)
        await eventually(lambda: asyncio.sleep(0, result=first in ran), 10)
        assert set(ran) == {first}  # only the leader runs the step
        gone = "ab".index(first)
        tasks[gone].cancel()  # its lock connection closes, as when the process dies
        await asyncio.gather(tasks[gone], return_exceptions=True)
        (second,) = await eventually(one_leads, 10)
        await eventually(lambda: asyncio.sleep(0, result=second in ran), 10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()
    assert second != first


async def test_replicas_migrating_at_once_apply_the_migrations_once(pg_url: str) -> None:
    stores = [await Store.open(pg_url, migrate=False) for _ in range(3)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    applied = [r for r in results if r[0] != r[1]]
    assert len(applied) == 1 and applied[0][0] is None
    assert {after for _, after in results} == {applied[0][1]}
