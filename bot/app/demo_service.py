"""demo-shop: a small shop backend with fault switches, the service `opsbot demo` watches.

Run it with `python -m bot.app.demo_service --port 9000 --log-file demo-shop.log`; faults are
switched by `POST /faults/{name}` `{"enabled": true}` and leave the traces real software would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from pydantic import BaseModel

SERVICE = "demo-shop"
DEFAULT_PORT = 9000
LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s [%(process)d] %(name)s: %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
TAIL_KEEP = 5000

SELF_TRAFFIC_INTERVAL_S = 0.25
SELF_TRAFFIC_TIMEOUT_S = 15.0

MB = 1024 * 1024
BASELINE_MEMORY_BYTES = 140 * MB
MEMORY_LIMIT_BYTES = 512 * MB
# Each leaked cache entry is reported as 10 MB but really holds 1 MB: the list is real,
# the numbers are scaled so the demo reaches its limit in seconds without eating the machine.
LEAK_ENTRY_REPORTED_BYTES = 10 * MB
LEAK_ENTRY_REAL_BYTES = 1 * MB
LEAK_WARN_EVERY = 4

ERROR_BURST_RATIO = 0.8
NORMAL_REQUEST_S = (0.008, 0.06)
SLOW_REQUEST_S = (3.5, 5.0)
SLOW_THRESHOLD_S = 2.0
RECENT_LATENCIES = 20
CRASH_DELAY_S = 0.2

log = logging.getLogger("demo_shop")
http_log = logging.getLogger("demo_shop.http")
cache_log = logging.getLogger("demo_shop.cache")
worker_log = logging.getLogger("demo_shop.worker")


class Fault(StrEnum):
    MEMORY_LEAK = "memory_leak"
    ERROR_BURST = "error_burst"
    LATENCY = "latency"
    CRASH = "crash"


class FaultSwitch(BaseModel):
    enabled: bool


class OperationalError(Exception):
    """Stands in for psycopg's error so tracebacks read as the real driver's do."""

    __module__ = "psycopg"


class TailBuffer(logging.Handler):
    """Keeps the last formatted log lines (tracebacks split into lines) for `/logs/tail`."""

    def __init__(self, keep: int = TAIL_KEEP) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(self.format(record).splitlines())

    def tail(self, count: int) -> list[str]:
        return list(self.lines)[-count:] if count > 0 else []


class ShopMetrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.memory = Gauge(
            "demo_memory_bytes",
            "Simulated resident memory of the shop worker.",
            registry=self.registry,
        )
        self.requests = Counter(
            "demo_requests_total", "Requests served.", ["route", "code"], registry=self.registry
        )
        self.errors = Counter(
            "demo_errors_total",
            "Requests that failed with a 5xx.",
            ["route"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "demo_latency_seconds",
            "Request latency.",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10),
        )
        self.up = Gauge("demo_up", "1 while the shop reports healthy.", registry=self.registry)
        self.memory.set(BASELINE_MEMORY_BYTES)
        self.up.set(1)


@dataclass(slots=True)
class Shop:
    """The shop's state: which faults are on and what they have done so far."""

    metrics: ShopMetrics = field(default_factory=ShopMetrics)
    faults: set[Fault] = field(default_factory=set)
    cache: list[bytearray] = field(default_factory=list)
    out_of_memory: bool = False
    recent_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_LATENCIES))

    @property
    def memory_bytes(self) -> int:
        return BASELINE_MEMORY_BYTES + len(self.cache) * LEAK_ENTRY_REPORTED_BYTES

    def health_problem(self) -> str | None:
        """Why the shop is unhealthy right now, or None."""
        if self.out_of_memory:
            return (
                f"out of memory: worker rss {self.memory_bytes // MB} MB"
                f" reached its {MEMORY_LIMIT_BYTES // MB} MB limit"
            )
        if Fault.ERROR_BURST in self.faults:
            return 'database check failed: connection to server at "db" failed: timeout expired'
        slow = sorted(self.recent_latencies)
        if slow:
            p95 = slow[min(len(slow) - 1, int(len(slow) * 0.95))]
            if p95 > SLOW_THRESHOLD_S:
                return f"p95 latency {p95:.1f} s above {SLOW_THRESHOLD_S:.1f} s"
        return None

    def cache_order(self, order_id: int) -> None:
        """The leak: every order is cached and nothing is ever evicted."""
        if self.memory_bytes + LEAK_ENTRY_REPORTED_BYTES > MEMORY_LIMIT_BYTES:
            self.out_of_memory = True
            raise MemoryError
        self.cache.append(bytearray(LEAK_ENTRY_REAL_BYTES))
        self.metrics.memory.set(self.memory_bytes)
        if len(self.cache) % LEAK_WARN_EVERY == 0:
            cache_log.warning(
                "cache size %d MB and growing (entries=%d, evictions=0, last order_id=%d)",
                self.memory_bytes // MB,
                len(self.cache) * 1000,
                order_id,
            )

    def query_orders(self) -> None:
        """The database call that times out during an error burst."""
        if Fault.ERROR_BURST in self.faults and random.random() < ERROR_BURST_RATIO:
            raise OperationalError(
                'connection to server at "db" (10.0.3.7), port 5432 failed: timeout expired'
            )

    def update_health(self) -> None:
        self.metrics.up.set(0 if self.health_problem() else 1)


async def place_order(shop: Shop, route: str) -> Response:
    """The shop's normal work, with whatever the active faults do to it."""
    started = time.monotonic()
    order_id = random.randint(100_000, 999_999)
    code = 200
    try:
        if shop.out_of_memory:
            raise MemoryError
        await asyncio.sleep(
            random.uniform(*SLOW_REQUEST_S if Fault.LATENCY in shop.faults else NORMAL_REQUEST_S)
        )
        shop.query_orders()
        if Fault.MEMORY_LEAK in shop.faults:
            shop.cache_order(order_id)
        body: dict[str, object] = {"order_id": order_id, "status": "placed"}
    except (MemoryError, OperationalError) as error:
        code = 500
        http_log.exception("error while handling GET %s", route)
        if isinstance(error, MemoryError):
            worker_log.critical(
                "worker %d killed: out of memory (rss %d MB, limit %d MB)",
                os.getpid(),
                shop.memory_bytes // MB,
                MEMORY_LIMIT_BYTES // MB,
            )
        body = {"error": "internal server error"}
    elapsed = time.monotonic() - started
    shop.recent_latencies.append(elapsed)
    shop.metrics.requests.labels(route, str(code)).inc()
    shop.metrics.latency.labels(route).observe(elapsed)
    if code >= 500:
        shop.metrics.errors.labels(route).inc()
    if elapsed > SLOW_THRESHOLD_S:
        http_log.warning(
            "slow request GET %s order_id=%d took %.1f s (threshold %.1f s)",
            route,
            order_id,
            elapsed,
            SLOW_THRESHOLD_S,
        )
    http_log.info("GET %s %d %.1f ms order_id=%d", route, code, elapsed * 1000, order_id)
    shop.update_health()
    return JSONResponse(body, status_code=code)


def crash() -> None:
    """Log the fatal error and exit(1) shortly after, once the switch request is answered."""
    try:
        raise RuntimeError("invariant violated in payment reconciler: order ledger out of sync")
    except RuntimeError:
        worker_log.critical(
            "fatal: unhandled exception in worker %d, exiting with status 1",
            os.getpid(),
            exc_info=True,
        )
    asyncio.get_running_loop().call_later(CRASH_DELAY_S, os._exit, 1)


def _report_failure(task: asyncio.Task[httpx.Response]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("synthetic request failed: %r", error)


async def self_traffic(base_url: str) -> None:
    """Steady customer traffic, so logs and metrics move even when nobody is shopping."""
    in_flight: set[asyncio.Task[httpx.Response]] = set()
    async with httpx.AsyncClient(
        base_url=base_url, timeout=SELF_TRAFFIC_TIMEOUT_S, trust_env=False
    ) as client:
        try:
            while True:
                task = asyncio.create_task(client.get("/api/order"))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                task.add_done_callback(_report_failure)
                await asyncio.sleep(SELF_TRAFFIC_INTERVAL_S)
        finally:
            for task in in_flight:
                task.cancel()


def create_app(shop: Shop, tail: TailBuffer, base_url: str) -> FastAPI:
    """The shop's HTTP API, sending itself traffic at `base_url` while it runs."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Logged here, not before serving: from now on SIGTERM is handled (tests wait for it).
        log.info("%s starting pid=%d listening on %s", SERVICE, os.getpid(), base_url)
        traffic = asyncio.create_task(self_traffic(base_url))
        yield
        log.info("shutting down %s pid=%d", SERVICE, os.getpid())
        traffic.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await traffic

    app = FastAPI(title=SERVICE, lifespan=lifespan)

    @app.get("/")
    async def index() -> Response:
        return await place_order(shop, "/")

    @app.get("/api/order")
    async def order() -> Response:
        return await place_order(shop, "/api/order")

    @app.get("/health")
    async def health() -> JSONResponse:
        problem = shop.health_problem()
        if problem:
            return JSONResponse({"status": "unhealthy", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(shop.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/logs/tail", response_class=PlainTextResponse)
    async def logs_tail(lines: int = Query(100, ge=0, le=TAIL_KEEP)) -> str:
        return "".join(f"{line}\n" for line in tail.tail(lines))

    @app.get("/faults")
    async def faults() -> dict[str, bool]:
        return {fault.value: fault in shop.faults for fault in Fault}

    @app.post("/faults/{name}")
    async def switch(name: str, body: FaultSwitch) -> dict[str, bool]:
        try:
            fault = Fault(name)
        except ValueError:
            raise HTTPException(404, f"unknown fault {name!r}") from None
        if body.enabled:
            shop.faults.add(fault)
        else:
            shop.faults.discard(fault)
        log.warning("fault %s %s", fault.value, "enabled" if body.enabled else "disabled")
        if fault is Fault.CRASH and body.enabled:
            crash()
        shop.update_health()
        return {"enabled": body.enabled}

    return app


@contextlib.contextmanager
def logging_to(log_file: Path | None) -> Iterator[TailBuffer]:
    """Send the shop's log to stdout, the log file and the tail buffer (seeded from the file)."""
    formatter = logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT)
    formatter.converter = time.gmtime
    tail = TailBuffer()
    handlers: list[logging.Handler] = [tail, logging.StreamHandler(sys.stdout)]
    if log_file:
        if log_file.exists():
            with log_file.open(encoding="utf-8", errors="replace") as previous:
                tail.lines.extend(line.rstrip("\n") for line in previous)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield tail
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m bot.app.demo_service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--log-file", type=Path, default=None)
    args = parser.parse_args(argv)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    # Listening before uvicorn starts lets the self-traffic loop connect from its first tick.
    sock.listen()
    port = sock.getsockname()[1]
    base_url = f"http://{args.host}:{port}"
    with logging_to(args.log_file) as tail:
        app = create_app(Shop(), tail, base_url)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
