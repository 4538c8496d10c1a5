"""Ingest benchmark: `opsbot run` on a file SQLite database, Alertmanager notifications from
concurrent senders; prints throughput and latency, then checks the store lost nothing.

    python bench/ingest.py [--count 3000] [--senders 20] [--seed 1] [--profile out.prof]
                           [--storage-url postgresql://postgres@127.0.0.1:5432/opsbot_bench]
                           [--replicas 2] [--compare]

--storage-url names a PostgreSQL database that must not exist yet: the bench creates it and
drops it afterwards. With --replicas N, N `opsbot run` processes share it and the senders'
requests alternate between them. --compare runs SQLite, then PostgreSQL with one replica and
with --replicas (default 2), and prints the three side by side.

Notifications carry 1-50 alerts; 5% re-send an identical earlier body (must be a duplicate),
10% resolve every alert of an open group (its incident must resolve). Goal on 2 cores:
>= 500 notifications/s with p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

GOAL_RPS = 500.0
GOAL_P99_MS = 50.0
RESEND_SHARE = 0.05
RESOLVE_SHARE = 0.10
UPDATE_SHARE = 0.30  # of the rest: a later notification of an open group
MAX_ALERTS = 50
TRANSPORT_RETRIES = 2
START_TIMEOUT_S = 90.0  # a loaded machine (or cProfile) starts slowly
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
SEVERITIES = ("info", "warning", "high", "critical")


@dataclass
class Group:
    key: str
    name: str
    fingerprints: list[str] = field(default_factory=list)
    severities: dict[str, str] = field(default_factory=dict)


@dataclass
class Ledger:
    """What was sent and answered, to compare with the store afterwards."""

    rng: random.Random
    open_groups: dict[str, Group] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)
    opened: set[str] = field(default_factory=set)
    resolved: set[str] = field(default_factory=set)
    answered_bodies: list[bytes] = field(default_factory=list)
    distinct: set[str] = field(default_factory=set)
    alert_counts: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    resends: int = 0
    transport_retries: int = 0
    duplicates: int = 0
    alerts_sent: int = 0
    errors: list[str] = field(default_factory=list)
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def alert(group: Group, fp: str, status: str, seq: int) -> dict[str, object]:
    starts = BASE_TIME + timedelta(milliseconds=seq)
    return {
        "status": status,
        "labels": {
            "alertname": group.name,
            "service": f"svc-{group.name[-3:]}",
            "severity": group.severities[fp],
            "instance": fp,
        },
        "annotations": {"summary": f"{group.name} on {fp}"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": (starts + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        if status == "resolved"
        else "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus:9090/graph?seq={seq}",
        "fingerprint": fp,
    }


def notification(group: Group, status: str, seq: int) -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": group.key,
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "opsbot",
            "groupLabels": {"alertname": group.name},
            "commonLabels": {"alertname": group.name},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": [alert(group, fp, status, seq) for fp in group.fingerprints],
        }
    ).encode()


def add_alerts(ledger: Ledger, group: Group, n: int) -> None:
    for _ in range(n):
        fp = f"{group.name}-{len(group.fingerprints):02d}"
        group.fingerprints.append(fp)
        group.severities[fp] = ledger.rng.choice(SEVERITIES)


def plan_one(ledger: Ledger) -> tuple[str, Group | None, bytes]:
    """Pick the next notification: ("resend" | "resolve" | "update" | "open", group, body)."""
    rng, seq = ledger.rng, ledger.next_seq()
    roll = rng.random()
    if roll < RESEND_SHARE and ledger.answered_bodies:
        return "resend", None, rng.choice(ledger.answered_bodies)
    idle = [g for k, g in ledger.open_groups.items() if k not in ledger.busy]
    if roll < RESEND_SHARE + RESOLVE_SHARE and idle:
        group = rng.choice(idle)
        return "resolve", group, notification(group, "resolved", seq)
    if rng.random() < UPDATE_SHARE and idle:
        group = rng.choice(idle)
        add_alerts(ledger, group, min(rng.randint(1, 5), MAX_ALERTS - len(group.fingerprints)))
        return "update", group, notification(group, "firing", seq)
    name = f"BenchAlert{seq:06d}"
    group = Group(key=f'{{}}:{{alertname="{name}"}}', name=name)
    add_alerts(ledger, group, rng.randint(1, MAX_ALERTS))
    return "open", group, notification(group, "firing", seq)


async def sender(clients: list[httpx.AsyncClient], ledger: Ledger, remaining: list[int]) -> None:
    while remaining[0] > 0:
        remaining[0] -= 1
        client = clients[remaining[0] % len(clients)]  # alternate between the replicas
        kind, group, body = plan_one(ledger)
        if group is not None:
            ledger.busy.add(group.key)
        start = time.perf_counter()
        try:
            resp = await post(client, body, ledger)
        except httpx.HTTPError as exc:
            ledger.errors.append(f"{kind}: {exc!r}")
            continue
        finally:
            if group is not None:
                ledger.busy.discard(group.key)
        ledger.latencies_ms.append((time.perf_counter() - start) * 1000)
        if resp.status_code != 200:
            ledger.errors.append(f"{kind}: {resp.status_code} {resp.text[:200]}")
            continue
        record(ledger, kind, group, body, resp.json())


async def post(client: httpx.AsyncClient, body: bytes, ledger: Ledger) -> httpx.Response:
    """POST a notification; a connection lost before the answer (e.g. a keep-alive connection
    the server closed as it was reused) is sent again, as Alertmanager does: the bot answers
    a body it already has as a duplicate."""
    for attempt in range(TRANSPORT_RETRIES + 1):
        try:
            return await client.post(
                "/webhooks/alertmanager", content=body, headers={"content-type": "application/json"}
            )
        except httpx.TransportError:
            if attempt == TRANSPORT_RETRIES:
                raise
            ledger.transport_retries += 1
    raise AssertionError("unreachable")


def record(ledger: Ledger, kind: str, group: Group | None, body: bytes, answer: dict) -> None:
    ledger.alerts_sent += len(json.loads(body)["alerts"])
    if kind == "resend":
        ledger.resends += 1
        ledger.duplicates += answer["status"] == "duplicate"
        return
    assert group is not None
    ledger.answered_bodies.append(body)
    ledger.distinct.add(hashlib.sha256(body).hexdigest())
    if kind == "resolve":
        ledger.open_groups.pop(group.key, None)
        ledger.resolved.add(group.key)
        return
    ledger.open_groups[group.key] = group
    ledger.opened.add(group.key)
    ledger.alert_counts[group.key] = len(group.fingerprints)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bot(
    workdir: Path, port: int, storage_url: str, profile: str | None, name: str = "opsbot"
) -> subprocess.Popen[bytes]:
    config = workdir / f"{name}.yaml"
    config.write_text(
        f"http: {{host: 127.0.0.1, port: {port}}}\nstorage: {{url: '{storage_url}'}}\n"
        f"cluster: {{replica_id: {name}}}\n"
    )
    runner = ["-m", "cProfile", "-o", f"{profile}.{name}"] if profile else []
    return subprocess.Popen(
        [sys.executable, *runner, "-m", "bot", "run", "--config", str(config)],
        stdout=(workdir / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "OPSBOT_LOG_LEVEL": "WARNING"},
    )


async def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(base_url=url, timeout=1) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"opsbot exited with {proc.returncode} before answering")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"opsbot did not become ready in {START_TIMEOUT_S} s")


DELIVERIES_SQL = "SELECT count(*) FROM deliveries WHERE source = 'alertmanager'"
INCIDENTS_SQL = "SELECT group_key, status, alert_count FROM incidents"


async def read_store(storage_url: str) -> tuple[int, list[tuple[str, str, int]]]:
    """Delivery count and incident rows, from the SQLite file or the PostgreSQL database."""
    if storage_url.startswith("postgresql"):
        conn = await asyncpg.connect(storage_url)
        try:
            deliveries = await conn.fetchval(DELIVERIES_SQL)
            rows = [tuple(r) for r in await conn.fetch(INCIDENTS_SQL)]
        finally:
            await conn.close()
        return deliveries, rows  # type: ignore[return-value]
    with sqlite3.connect(storage_url.removeprefix("sqlite:///"), timeout=30) as conn:
        return conn.execute(DELIVERIES_SQL).fetchone()[0], conn.execute(INCIDENTS_SQL).fetchall()


def check_store(deliveries: int, rows: list[tuple[str, str, int]], ledger: Ledger) -> list[str]:
    """Compare the store with the ledger; returns the problems found."""
    problems = []
    if deliveries != len(ledger.distinct):
        problems.append(f"deliveries rows {deliveries} != distinct bodies {len(ledger.distinct)}")
    if ledger.duplicates != ledger.resends:
        problems.append(f"re-sends {ledger.resends} but duplicates {ledger.duplicates}")
    by_key = {key: (status, count) for key, status, count in rows}
    if len(rows) != len(ledger.opened) or set(by_key) != ledger.opened:
        problems.append(f"incidents {len(rows)} != groups opened {len(ledger.opened)}")
    wrong_status = [
        k
        for k in ledger.opened
        if by_key.get(k, ("?", 0))[0] != ("resolved" if k in ledger.resolved else "triggered")
    ]
    if wrong_status:
        problems.append(f"{len(wrong_status)} incidents in the wrong state, e.g. {wrong_status[0]}")
    wrong_count = [k for k, n in ledger.alert_counts.items() if by_key.get(k, ("", -1))[1] != n]
    if wrong_count:
        problems.append(f"{len(wrong_count)} incidents with a wrong alert_count")
    if ledger.errors:
        problems.append(f"{len(ledger.errors)} failed requests, e.g. {ledger.errors[0]}")
    return problems


class CpuMeter:
    """CPU seconds the bots (and the PostgreSQL backends serving the bench's database) spend
    from now on: on a machine with fewer cores than processes, the cost per notification is
    what tells one replica from two, not the throughput alone. Linux /proc only."""

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, pids: list[int], storage_url: str | None) -> None:
        self.pids = pids
        self.database = make_url(storage_url).database if storage_url else None
        self.start = self._read()

    def _ticks(self, pid: int | str) -> int:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0  # gone (a backend that closed) or not Linux
        return int(fields[11]) + int(fields[12])  # utime + stime

    def _backends(self) -> list[str]:
        if not self.database:
            return []
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres:") and f" {self.database} " in cmd:
                found.append(proc.name)
        return found

    def _read(self) -> tuple[int, dict[str, int]]:
        return sum(map(self._ticks, self.pids)), {b: self._ticks(b) for b in self._backends()}

    def spent(self) -> tuple[float, float]:
        """(opsbot, PostgreSQL) CPU seconds since the meter was made."""
        bots, backends = self._read()
        db = sum(t - self.start[1].get(b, 0) for b, t in backends.items())
        return (bots - self.start[0]) / self.TICK, db / self.TICK


@dataclass
class Result:
    label: str
    rps: float
    p99_ms: float
    problems: list[str]


@contextlib.asynccontextmanager
async def fresh_database(storage_url: str) -> AsyncIterator[str]:
    """Create the PostgreSQL database `storage_url` names (it must not exist), drop it after."""
    url = make_url(storage_url)
    name = url.database
    if not name:
        raise SystemExit(f"--storage-url {storage_url} names no database")
    admin_url = url.set(drivername="postgresql", database="postgres")
    admin = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
    try:
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            raise SystemExit(f"database {name} exists: name a fresh one (or drop it)") from None
        try:
            yield storage_url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def bench(
    count: int,
    senders: int,
    seed: int,
    profile: str | None,
    storage_url: str | None,
    replicas: int = 1,
) -> Result:
    """One run on a fresh store: SQLite in a temporary directory, or a new PostgreSQL database."""
    if storage_url is None:
        return await run_bots(count, senders, seed, profile, None, replicas)
    async with fresh_database(storage_url):
        return await run_bots(count, senders, seed, profile, storage_url, replicas)


async def run_bots(
    count: int,
    senders: int,
    seed: int,
    profile: str | None,
    storage_url: str | None,
    replicas: int,
) -> Result:
    with tempfile.TemporaryDirectory(prefix="opsbot-bench-") as tmp:
        workdir = Path(tmp)
        urls = [f"http://127.0.0.1:{free_port()}" for _ in range(replicas)]
        storage = storage_url or f"sqlite:///{workdir}/bench.db"
        procs = [
            start_bot(workdir, int(url.rsplit(":", 1)[1]), storage, profile, f"replica-{i}")
            for i, url in enumerate(urls)
        ]
        try:
            for url, proc in zip(urls, procs, strict=True):
                await wait_ready(url, proc)
            ledger = Ledger(rng=random.Random(seed))
            remaining = [count]
            per_replica = -(-senders // replicas)
            limits = httpx.Limits(
                max_connections=per_replica, max_keepalive_connections=per_replica
            )
            clients = [httpx.AsyncClient(base_url=u, timeout=30, limits=limits) for u in urls]
            try:
                cpu = CpuMeter([p.pid for p in procs], storage_url)
                started = time.perf_counter()
                await asyncio.gather(*(sender(clients, ledger, remaining) for _ in range(senders)))
                elapsed = time.perf_counter() - started
                cpu_s = cpu.spent()
                stats = (await clients[0].get("/stats")).json()
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))
        finally:
            # SIGINT lets cProfile write its file; uvicorn shuts down gracefully on either.
            for proc in procs:
                proc.send_signal(signal.SIGINT if profile else signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
        label = f"{'PostgreSQL' if storage_url else 'SQLite'}, {replicas} replica(s)"
        rps, p99 = report(ledger, elapsed, senders, stats, label)
        print(
            f"CPU while sending: opsbot {cpu_s[0]:.1f} s, PostgreSQL {cpu_s[1]:.1f} s "
            f"({1000 * sum(cpu_s) / max(1, len(ledger.latencies_ms)):.1f} ms per notification; "
            f"load average {os.getloadavg()[0]:.1f})"
        )
        problems = check_store(*await read_store(storage), ledger)
    for problem in problems:
        print(f"LOST OR WRONG: {problem}")
    if not problems:
        print("store check: OK (nothing lost, duplicates ignored, resolutions applied)")
    return Result(label, rps, p99, problems)


def report(
    ledger: Ledger, elapsed: float, senders: int, stats: dict, label: str
) -> tuple[float, float]:
    """Print one run's figures; returns (notifications/s, p99 ms)."""
    n = len(ledger.latencies_ms)
    q = statistics.quantiles(ledger.latencies_ms, n=100) if n > 1 else [0.0] * 99
    rps = n / elapsed
    print(f"== {label}")
    print(f"notifications: {n} from {senders} senders in {elapsed:.2f} s")
    print(f"  opened {len(ledger.opened)} groups, resolved {len(ledger.resolved)}, ", end="")
    print(f"re-sent {ledger.resends} bodies, {ledger.alerts_sent} alerts in all")
    print(f"webhooks/s: {rps:.0f}   alerts/s: {ledger.alerts_sent / elapsed:.0f}")
    print(
        f"latency ms: p50 {q[49]:.1f}   p90 {q[89]:.1f}   p99 {q[98]:.1f}   max {max(ledger.latencies_ms):.1f}"
    )
    print(f"outbox at the end: {stats['outbox']}")
    if ledger.transport_retries:
        print(f"sent again after a lost connection: {ledger.transport_retries}")
    verdict = "met" if rps >= GOAL_RPS and q[98] <= GOAL_P99_MS else "MISSED"
    print(f"goal (>= {GOAL_RPS:.0f}/s, p99 <= {GOAL_P99_MS:.0f} ms): {verdict}")
    return rps, q[98]


async def compare(args: argparse.Namespace, profile: str | None) -> list[Result]:
    """SQLite, PostgreSQL with one replica, PostgreSQL with `args.replicas`, one after another."""
    runs: list[tuple[str | None, int]] = [(None, 1), (args.storage_url, 1)]
    runs.append((args.storage_url, max(args.replicas, 2)))
    results = []
    for storage_url, replicas in runs:
        results.append(
            await bench(args.count, args.senders, args.seed, profile, storage_url, replicas)
        )
        print()
    print(f"{'store':32} {'webhooks/s':>10} {'p99 ms':>8}  store check")
    for r in results:
        print(f"{r.label:32} {r.rps:10.0f} {r.p99_ms:8.1f}  {'LOST' if r.problems else 'OK'}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="notifications to send")
    parser.add_argument("--senders", type=int, default=20, help="concurrent senders")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", help="run the bot under cProfile, write stats to this file")
    parser.add_argument(
        "--storage-url",
        help="a PostgreSQL database to create, use and drop instead of a fresh SQLite file, "
        "e.g. postgresql://postgres@127.0.0.1:5432/opsbot_bench",
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="opsbot processes sharing a PostgreSQL database"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run SQLite, PostgreSQL with 1 replica and with --replicas (at least 2)",
    )
    args = parser.parse_args()
    on_pg = (args.storage_url or "").startswith("postgresql")
    if (args.replicas > 1 or args.compare) and not on_pg:
        parser.error("--replicas above 1 and --compare need --storage-url postgresql://...")
    profile = str(Path(args.profile).resolve()) if args.profile else None
    if args.compare:
        results = asyncio.run(compare(args, profile))
    else:
        results = [
            asyncio.run(
                bench(args.count, args.senders, args.seed, profile, args.storage_url, args.replicas)
            )
        ]
    sys.exit(1 if any(r.problems for r in results) else 0)


if __name__ == "__main__":
    main()
