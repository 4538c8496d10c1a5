"""Store at scale: 10,000 open incidents holding 100,000 alerts, then the reads and writes people
do all day, timed through the real app (in-process ASGI) and the real lifecycle code.

    python bench/store_scale.py [--incidents 10000] [--alerts-per 10] [--rounds 50]
                                [--storage-url postgresql://postgres@127.0.0.1:5432/opsbot_scale]

Prints p50/p95 (ms) for: ack (find by short id + acknowledge, one transaction), the incident
list (API, newest 200), the console's first page (/stats + /api/me + the list filtered by
status), /stats, one incident's detail. Goal: every p95 under 100 ms. With --storage-url the
database must be empty (a fresh one); by default a temporary SQLite file is used.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app.config import Config
from bot.app.runtime import Runtime
from bot.app.server.app import create_app
from bot.incidents import lifecycle
from bot.incidents.ingest import apply_alert_sets
from bot.incidents.models import utcnow
from bot.store import Store
from integrations.alerts import Alert, AlertStatus, Severity

GOAL_P95_MS = 100.0
FILL_BATCH = 250  # incidents per transaction while filling


def alerts_for(group: int, per: int) -> list[Alert]:
    now = utcnow() - timedelta(hours=2)
    service = f"svc-{group % 60:02d}"
    return [
        Alert(
            source="alertmanager",
            group_key=f'{{}}:{{alertname="Scale{group:05d}"}}',
            fingerprint=f"{group:05d}-{k:02d}",
            status=AlertStatus.FIRING,
            title=f"Scale{group:05d}: {service} error ratio above 5%",
            severity=(Severity.CRITICAL, Severity.WARNING, Severity.INFO)[group % 3],
            starts_at=now,
            service=service,
            labels={"alertname": f"Scale{group:05d}", "service": service, "pod": f"{service}-{k}"},
            annotations={"summary": f"{service} error ratio above 5%", "runbook": "https://x"},
        )
        for k in range(per)
    ]


async def fill(store: Store, cfg: Config, incidents: int, per: int) -> float:
    start = time.perf_counter()
    for first in range(0, incidents, FILL_BATCH):
        sets = [alerts_for(g, per) for g in range(first, min(first + FILL_BATCH, incidents))]
        await store.transact(apply_alert_sets, cfg, sets, utcnow())
    return time.perf_counter() - start


async def timed(rounds: int, call: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    samples = []
    for n in range(rounds):
        start = time.perf_counter()
        await call(n)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--incidents", type=int, default=10_000)
    ap.add_argument("--alerts-per", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--storage-url", default=None)
    a = ap.parse_args()
    url = a.storage_url or f"sqlite:///{tempfile.mkdtemp(prefix='store-scale-')}/opsbot.db"
    cfg = Config.model_validate({"storage": {"url": url}})
    store = await Store.open(url)
    took = await fill(store, cfg, a.incidents, a.alerts_per)
    print(
        f"filled {a.incidents} open incidents / {a.incidents * a.alerts_per} alerts "
        f"in {took:.1f} s ({store.engine.dialect.name})"
    )
    runtime = Runtime(cfg, store)
    app = create_app(runtime, manage_runtime=False)
    transport = httpx.ASGITransport(app=app)
    results: dict[str, tuple[float, float]] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:

        async def get(path: str) -> None:
            resp = await client.get(path)
            resp.raise_for_status()

        async def ack(n: int) -> None:
            async with store.write() as conn:
                inc = await lifecycle.find(conn, f"#{1 + n * 97 % a.incidents}")
                await lifecycle.acknowledge(conn, cfg, inc, "bench")

        async def console_first_page(_: int) -> None:
            await asyncio.gather(
                get("/stats"), get("/api/me"), get("/api/incidents?status=triggered")
            )

        results["ack"] = await timed(a.rounds, ack)
        results["list (API)"] = await timed(a.rounds, lambda _: get("/api/incidents"))
        results["console first page"] = await timed(a.rounds, console_first_page)
        results["/stats"] = await timed(a.rounds, lambda _: get("/stats"))
        results["incident detail"] = await timed(
            a.rounds, lambda n: get(f"/api/incidents/{1 + n * 31 % a.incidents}")
        )
    await store.close()
    worst = 0.0
    for name, (p50, p95) in results.items():
        worst = max(worst, p95)
        print(f"{name:20s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    verdict = "met" if worst < GOAL_P95_MS else "NOT met"
    print(f"goal p95 < {GOAL_P95_MS:.0f} ms: {verdict} (worst p95 {worst:.1f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
