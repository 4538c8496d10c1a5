"""demo-shop as a real process: each fault shows in its health, metrics and log."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.demo_service import DemoShop, eventually, read_log, start_demo_shop

FAULT_TIMEOUT_S = 30.0
MB = 1024 * 1024


async def metric(client: httpx.AsyncClient, name: str) -> float:
    """The sum of every sample named `name` on /metrics."""
    text = (await client.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def log_tail(client: httpx.AsyncClient) -> str:
    return (await client.get("/logs/tail", params={"lines": 2000})).text


async def switch(client: httpx.AsyncClient, fault: str, enabled: bool) -> None:
    response = await client.post(f"/faults/{fault}", json={"enabled": enabled})
    assert response.status_code == 200
    assert response.json() == {"enabled": enabled}


def client_for(shop: DemoShop) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=shop.url, timeout=10.0)


async def test_healthy_shop_serves_orders_and_its_own_traffic_moves_metrics(
    demo_shop: DemoShop,
) -> None:
    async with client_for(demo_shop) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        order = await client.get("/api/order")
        assert order.status_code == 200
        assert order.json()["status"] == "placed"
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/faults")).json() == {
            "memory_leak": False,
            "error_burst": False,
            "latency": False,
            "crash": False,
        }
        assert await metric(client, "demo_up") == 1
        assert await metric(client, "demo_memory_bytes") > 0
        served = await metric(client, "demo_requests_total")

        async def more_traffic() -> bool:
            return await metric(client, "demo_requests_total") > served + 3

        await eventually(more_traffic, FAULT_TIMEOUT_S)
        tail = await log_tail(client)
        assert f"pid={demo_shop.process.pid}" in tail
        assert "GET /api/order 200" in tail
        assert (await client.post("/faults/disk_full", json={"enabled": True})).status_code == 404


async def test_memory_leak_grows_memory_until_the_worker_runs_out(demo_shop: DemoShop) -> None:
    async with client_for(demo_shop) as client:
        baseline = await metric(client, "demo_memory_bytes")
        await switch(client, "memory_leak", True)
        assert (await client.get("/faults")).json()["memory_leak"] is True

        async def out_of_memory() -> httpx.Response | None:
            health = await client.get("/health")
            return health if health.status_code == 503 else None

        health = await eventually(out_of_memory, FAULT_TIMEOUT_S)
        assert "out of memory" in health.json()["reason"]
        assert await metric(client, "demo_memory_bytes") > baseline + 100 * MB
        assert await metric(client, "demo_up") == 0
        tail = await log_tail(client)
        assert "MB and growing" in tail
        assert "Traceback (most recent call last):" in tail
        assert "\nMemoryError\n" in tail
        assert "killed: out of memory" in tail

        # A leak does not heal by itself: only a restart gives the memory back.
        await switch(client, "memory_leak", False)
        assert (await client.get("/health")).status_code == 503
        assert (await client.get("/api/order")).status_code == 500


async def test_error_burst_fails_requests_with_database_timeouts(demo_shop: DemoShop) -> None:
    async with client_for(demo_shop) as client:
        await switch(client, "error_burst", True)
        health = await client.get("/health")
        assert health.status_code == 503
        assert "database" in health.json()["reason"]

        async def errors_counted() -> bool:
            return await metric(client, "demo_errors_total") >= 3

        await eventually(errors_counted, FAULT_TIMEOUT_S)
        tail = await log_tail(client)
        assert "Traceback (most recent call last):" in tail
        assert 'psycopg.OperationalError: connection to server at "db"' in tail
        assert "GET /api/order 500" in tail

        await switch(client, "error_burst", False)
        assert (await client.get("/health")).json() == {"status": "ok"}


async def test_latency_makes_requests_slow(demo_shop: DemoShop) -> None:
    async with client_for(demo_shop) as client:
        await switch(client, "latency", True)

        async def slow_logged() -> bool:
            return "slow request GET /api/order" in await log_tail(client)

        await eventually(slow_logged, FAULT_TIMEOUT_S)
        health = await client.get("/health")
        assert health.status_code == 503
        assert "latency" in health.json()["reason"]
        assert await metric(client, "demo_latency_seconds_sum") > 3.0


async def test_crash_exits_non_zero_and_a_new_process_is_healthy(tmp_path: Path) -> None:
    log_file = tmp_path / "demo-shop.log"
    crashed = await start_demo_shop(log_file)
    try:
        async with client_for(crashed) as client:
            await switch(client, "crash", True)
        assert await asyncio.wait_for(crashed.process.wait(), FAULT_TIMEOUT_S) == 1
    finally:
        await crashed.stop()
    assert f"fatal: unhandled exception in worker {crashed.process.pid}" in await asyncio.to_thread(
        read_log, log_file
    )

    restarted = await start_demo_shop(log_file)
    try:
        async with client_for(restarted) as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            assert not any((await client.get("/faults")).json().values())
            # The tail still shows why the previous process died.
            assert "exiting with status 1" in await log_tail(client)
    finally:
        await restarted.stop()


async def test_sigterm_shuts_down_cleanly(demo_shop: DemoShop) -> None:
    code = await demo_shop.stop()
    assert code in (0, -signal.SIGTERM)
    assert "shutting down demo-shop" in await asyncio.to_thread(read_log, demo_shop.log_file)
