"""The store, the same code on SQLite and on PostgreSQL (`store_url` runs each test on both):
group commit with one bad delivery failing alone, names longer than their columns, purge by
retention, /stats from aggregates, and two replicas opening the same groups at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import func, insert, select, update

from bot.app.config import Config, RetentionConfig
from bot.app.stats import compute
from bot.errors import StoreUnavailable
from bot.incidents import lifecycle
from bot.incidents.ingest import IngestResult, ingest
from bot.incidents.models import utcnow
from bot.ingest.writer import Delivery, IngestWriter, Rejected
from bot.store import Store
from bot.store import schema as t
from bot.store.purge import purge
from integrations.alerts import Alert, AlertStatus, Severity
from tests.fakes.bot_server import run_bot
from tests.payloads import alertmanager_notification


def alert(group: str, fingerprint: str = "fp", **changes: Any) -> Alert:
    values: dict[str, Any] = {
        "source": "alertmanager",
        "group_key": group,
        "fingerprint": fingerprint,
        "status": AlertStatus.FIRING,
        "title": f"{group} is failing",
        "severity": Severity.CRITICAL,
        "starts_at": utcnow(),
        "labels": {"alertname": group},
        **changes,
    }
    return Alert(**values)


async def nothing(_: list[IngestResult]) -> None:
    """No worker to wake in these tests."""


def delivery(key: str, *alerts: Alert) -> Delivery:
    return Delivery("alertmanager", key, b"{}", list(alerts))


async def test_one_bad_delivery_in_a_batch_fails_alone(store_url: str) -> None:
    cfg = Config.model_validate({"storage": {"url": store_url}})
    store = await Store.open(store_url)
    try:
        writer = IngestWriter(store, cfg, on_commit=nothing)
        # no start time: this alert cannot be stored, as any row the store cannot hold
        bad = alert("bad", starts_at=cast(Any, None))
        outcomes = await asyncio.gather(
            writer.submit(delivery("d1", alert("g1"))),
            writer.submit(delivery("d2", bad)),
            writer.submit(delivery("d3", alert("g3"))),
            writer.submit(delivery("d1", alert("g1"))),  # a twin in the same batch
            return_exceptions=True,
        )
        first, refused, third, twin = outcomes
        assert isinstance(refused, Rejected), refused
        assert "could not store this delivery" in str(refused)
        assert not isinstance(first, BaseException) and first is not None
        assert not isinstance(third, BaseException) and third is not None
        assert (len(first.opened), len(third.opened)) == (1, 1)
        assert twin is None  # a repeat of d1: applied once
        async with store.read() as conn:
            groups = (await conn.scalars(select(t.incidents.c.group_key))).all()
            keys = (await conn.scalars(select(t.deliveries.c.idem_key))).all()
        assert sorted(groups) == ["g1", "g3"]
        assert sorted(keys) == ["d1", "d3"]
    finally:
        await store.close()


async def test_the_writer_remembers_what_it_stored_and_the_store_still_knows_after_restart(
    store_url: str,
) -> None:
    cfg = Config.model_validate({"storage": {"url": store_url}})
    store = await Store.open(store_url)
    try:
        writer = IngestWriter(store, cfg, on_commit=nothing)
        bad = alert("bad", starts_at=cast(Any, None))
        stored, refused = await asyncio.gather(
            writer.submit(delivery("d1", alert("g1"))),
            writer.submit(delivery("d2", bad)),
            return_exceptions=True,
        )
        assert stored is not None and isinstance(refused, Rejected)
        assert writer.stored("alertmanager", "d1")
        assert not writer.stored("alertmanager", "d2")  # its retry is refused again, not 200
        assert not writer.stored("grafana", "d1")  # a key is its sender's own

        restarted = IngestWriter(store, cfg, on_commit=nothing)  # a new process: no memory
        assert not restarted.stored("alertmanager", "d1")
        assert await restarted.submit(delivery("d1", alert("g1"))) is None  # still a duplicate
        assert restarted.stored("alertmanager", "d1")
    finally:
        await store.close()


async def test_a_failure_after_the_commit_still_answers_the_sender(store_url: str) -> None:
    """What follows a commit (paging an escalation's first step at once) may fail, e.g. with
    the store gone; the sender still gets its answer, and the next delivery is written."""
    cfg = Config.model_validate({"storage": {"url": store_url}})

    async def broken(_: list[IngestResult]) -> None:
        raise StoreUnavailable("the store went away after the commit")

    store = await Store.open(store_url)
    try:
        writer = IngestWriter(store, cfg, on_commit=broken)
        first = await asyncio.wait_for(writer.submit(delivery("d1", alert("g1"))), 10)
        assert first is not None and len(first.opened) == 1
        second = await asyncio.wait_for(writer.submit(delivery("d2", alert("g2"))), 10)
        assert second is not None and len(second.opened) == 1
    finally:
        await store.close()


async def test_memory_of_stored_deliveries_never_outlasts_their_retention(store_url: str) -> None:
    """Past `request_bodies_s` the purge deletes the delivery row, so the same key is new."""
    cfg = Config.model_validate(
        {"storage": {"url": store_url, "retention": {"request_bodies_s": 0}}}
    )
    store = await Store.open(store_url)
    try:
        writer = IngestWriter(store, cfg, on_commit=nothing)
        await writer.submit(delivery("d1", alert("g1")))
        assert not writer.stored("alertmanager", "d1")
    finally:
        await store.close()


async def test_names_longer_than_their_columns_are_cut_with_a_marker(store_url: str) -> None:
    cfg = Config.model_validate({"storage": {"url": store_url}})
    name = "DiskAlmostFull" + "x" * 2000
    service = "checkout-" + "s" * 400
    bodies = [
        alertmanager_notification(
            {"alertname": name, "service": service, "severity": "critical", "path": "/" * 3000},
            {},
            group=f'{{}}:{{alertname="{name}", shard="{shard}"}}',
            fingerprint="f" * 300,
        )
        for shard in ("a", "b")  # two group keys that differ only past the column's width
    ]
    async with run_bot(cfg) as bot:
        for body in bodies:
            resp = await bot.client.post("/webhooks/alertmanager", json=body)
            assert resp.status_code == 200, resp.text
        listed = (await bot.client.get("/api/incidents")).json()["incidents"]
    assert len(listed) == 2
    for inc in listed:
        assert len(inc["title"]) <= 500 and inc["title"].startswith("DiskAlmostFullxxx")
        assert len(inc["service"]) == 200 and inc["service"].endswith(lifecycle.CUT_MARKER)
        assert inc["labels"]["path"].endswith(lifecycle.CUT_MARKER)
    store = await Store.open(store_url)
    try:
        async with store.read() as conn:
            keys = (await conn.scalars(select(t.incidents.c.group_key))).all()
    finally:
        await store.close()
    assert len(set(keys)) == 2 and all(len(k) == 500 and lifecycle.CUT_MARKER in k for k in keys)


async def test_purge_removes_only_old_delivered_rows(store_url: str) -> None:
    store = await Store.open(store_url)
    now = utcnow()
    day = timedelta(days=1)
    keep = RetentionConfig(delivered_outbox_s=86_400, request_bodies_s=7 * 86_400)
    rows = {
        "old done": ("done", now - 2 * day),
        "new done": ("done", now - day / 2),
        "old pending": ("pending", None),
        "old dead": ("dead", now - 30 * day),
    }
    try:
        async with store.write() as conn:
            for name, (status, done_at) in rows.items():
                await conn.execute(
                    insert(t.outbox).values(
                        kind="reply",
                        destination="console:console",
                        ordering_key=name,
                        payload={},
                        status=status,
                        attempts=0,
                        next_attempt_at=now - 30 * day,
                        created_at=now - 30 * day,
                        done_at=done_at,
                    )
                )
            for key, age in (("week-old", 8 * day), ("fresh", day)):
                await conn.execute(
                    insert(t.deliveries).values(
                        source="alertmanager",
                        idem_key=key,
                        received_at=now - age,
                        body="{}",
                        outcome="",
                    )
                )
        purged = await purge(store, keep, now)
        assert (purged.outbox, purged.deliveries) == (1, 1)
        async with store.read() as conn:
            left = (await conn.scalars(select(t.outbox.c.ordering_key))).all()
            deliveries = (await conn.scalars(select(t.deliveries.c.idem_key))).all()
        assert sorted(left) == ["new done", "old dead", "old pending"]
        assert deliveries == ["fresh"]
    finally:
        await store.close()


async def test_stats_come_from_aggregates(store_url: str) -> None:
    cfg = Config.model_validate({"storage": {"url": store_url}})
    store = await Store.open(store_url)
    try:
        async with store.write() as conn:
            ids = [(await ingest(conn, cfg, [alert(g)])).opened[0] for g in ("a", "b")]
            created = utcnow() - timedelta(minutes=10)
            i = t.incidents
            await conn.execute(update(i).values(created_at=created))
            await conn.execute(
                update(i)
                .where(i.c.id == ids[0])
                .values(
                    status="resolved",
                    acknowledged_at=created + timedelta(seconds=60),
                    resolved_at=created + timedelta(seconds=300),
                )
            )
            await conn.execute(
                update(i)
                .where(i.c.id == ids[1])
                .values(status="acknowledged", acknowledged_at=created + timedelta(seconds=180))
            )
            stats = await compute(conn)
            total = await conn.scalar(select(func.count()).select_from(i))
    finally:
        await store.close()
    assert total == 2
    assert stats["incidents"] == {"triggered": 0, "acknowledged": 1, "resolved": 1}
    assert (stats["mtta_s"], stats["mttr_s"]) == (120.0, 300.0)
    assert stats["outbox"]["pending"] > 0


async def test_two_replicas_opening_the_same_groups_at_once(store_url: str) -> None:
    cfg = Config.model_validate({"storage": {"url": store_url}})
    replicas = [await Store.open(store_url) for _ in range(2)]
    try:
        writers = [IngestWriter(s, cfg, on_commit=nothing) for s in replicas]
        groups = [f"g{n:02d}" for n in range(12)]

        async def send(w: IngestWriter, order: list[str], tag: str) -> None:
            await asyncio.gather(
                *(w.submit(delivery(f"{tag}-{g}", alert(g, fingerprint=tag))) for g in order)
            )

        # the same groups, in opposite orders, from two processes: no deadlock, no 500
        await asyncio.gather(send(writers[0], groups, "r1"), send(writers[1], groups[::-1], "r2"))
        async with replicas[0].read() as conn:
            rows = (
                await conn.execute(select(t.incidents.c.group_key, t.incidents.c.alert_count))
            ).all()
            shorts = (await conn.scalars(select(t.incidents.c.short_id))).all()
    finally:
        for s in replicas:
            await s.close()
    assert sorted(rows) == [(g, 2) for g in groups]  # one incident per group, both alerts in it
    assert len(set(shorts)) == len(groups)  # no #N handed out twice


async def test_a_server_hanging_up_while_a_connection_opens_is_the_store_unavailable() -> None:
    """PostgreSQL (or a proxy before it) accepting a connection and closing it mid-handshake:
    asyncpg reports SQLSTATE 08003, not a network error. It is the store being unavailable
    (webhooks answer 503 and the sender retries), not an error of the request (500)."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(8)  # asyncpg's SSLRequest
        writer.write(b"N")  # no TLS: the startup message follows in plain text
        await reader.read(4096)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = await Store.open(f"postgresql://postgres@127.0.0.1:{port}/test", migrate=False)
    try:
        with pytest.raises(StoreUnavailable, match="closed in the middle"):
            await store.ping()
    finally:
        await store.close()
        server.close()
