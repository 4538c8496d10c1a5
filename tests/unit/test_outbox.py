"""The durable outbound queue on a real SQLite store: order per thread, backoff, dead
letters, coalescing, rate limits and leases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from bot.app.config import OutboxConfig
from bot.incidents.models import aware, utcnow
from bot.queue import outbox
from bot.queue.budget import TokenBucket, flat
from bot.queue.health import WorkerHealth
from bot.queue.outbox import Item, OutboxWorker, Priority
from bot.store import Store
from bot.store import schema as t
from integrations.errors import PermanentError, RateLimited, TransientError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(f"sqlite:///{tmp_path / 'outbox.db'}")
    try:
        yield s
    finally:
        await s.close()


class Sink:
    """A handler that records what it was given and fails the first `fail[n]` times for n."""

    def __init__(self, fail: dict[int, int] | None = None, error: Exception | None = None):
        self.calls: list[int] = []
        self.fail = dict(fail or {})
        self.error = error or TransientError("chat API answered 502")

    async def __call__(self, item: Item) -> None:
        n = item.payload["n"]
        self.calls.append(n)
        if self.fail.get(n, 0) > 0:
            self.fail[n] -= 1
            raise self.error


def worker(
    store: Store,
    handler: Callable[[Item], Awaitable[None]],
    dead: list[tuple[int, str]] | None = None,
    **cfg: Any,
) -> OutboxWorker:
    """A worker for `reply` items; dead letters are appended to `dead` as (n, error)."""

    async def on_dead(item: Item, error: str) -> None:
        if dead is not None:
            dead.append((item.payload["n"], error))

    return OutboxWorker(store, {"reply": handler}, OutboxConfig(**cfg), on_dead=on_dead)


async def put(store: Store, n: int, thread: str = "T1", destination: str = "console:c") -> None:
    async with store.write() as conn:
        await outbox.enqueue(conn, "reply", destination, {"n": n}, ordering_key=thread)


async def rows(store: Store) -> list[Any]:
    async with store.read() as conn:
        return list((await conn.execute(select(t.outbox).order_by(t.outbox.c.id))).all())


async def make_due(store: Store) -> None:
    """Time passes: every pending item's backoff is over."""
    async with store.write() as conn:
        await conn.execute(
            update(t.outbox)
            .where(t.outbox.c.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def drain(w: OutboxWorker) -> None:
    while await w.run_once():
        pass


async def test_order_within_a_thread_holds_while_an_earlier_item_retries(store: Store) -> None:
    sink = Sink(fail={1: 2})
    w = worker(store, sink)
    for n in (1, 2, 3):
        await put(store, n)
    await put(store, 9, thread="T2")

    await drain(w)
    assert sink.calls == [1, 9]  # 2 and 3 wait behind 1; the other thread is not held up
    await make_due(store)
    await drain(w)
    assert sink.calls == [1, 9, 1]
    await make_due(store)
    await drain(w)
    assert sink.calls == [1, 9, 1, 1, 2, 3]
    assert [r.status for r in await rows(store)] == ["done"] * 4


async def test_backoff_grows_exponentially_with_jitter_and_is_capped(store: Store) -> None:
    sink = Sink(fail={1: 10})
    w = worker(store, sink, base_backoff_s=2.0, max_backoff_s=20.0, max_attempts=10)
    await put(store, 1)
    delays: list[float] = []
    for _ in range(6):
        before = utcnow()
        assert await w.run_once() == 1
        (row,) = await rows(store)
        delays.append((aware(row.next_attempt_at) - before).total_seconds())
        await make_due(store)
    (row,) = await rows(store)
    assert (row.status, row.attempts) == ("pending", 6)
    assert "502" in row.last_error
    for attempt, delay in enumerate(delays, start=1):
        full = min(20.0, 2.0 * 2 ** (attempt - 1))
        assert full * 0.5 - 0.01 <= delay <= full + 0.5, (attempt, delays)
    assert delays[3] > delays[0] * 2  # 8 s window vs 2 s window: the growth outruns jitter


async def test_dead_letter_after_max_attempts_unblocks_the_thread(store: Store) -> None:
    sink = Sink(fail={1: 100})
    dead: list[tuple[int, str]] = []
    w = worker(store, sink, dead, max_attempts=3)
    await put(store, 1)
    await put(store, 2)
    for _ in range(3):
        await drain(w)
        await make_due(store)
    first, second = await rows(store)
    assert first.status == "dead"
    assert "TransientError" in first.last_error
    assert dead == [(1, "TransientError: chat API answered 502")]
    assert sink.calls == [1, 1, 1, 2]
    assert second.status == "done"
    async with store.read() as conn:
        assert await outbox.counts(conn) == {"pending": 0, "failed": 1, "due": 0, "lag_s": 0.0}


async def test_permanent_errors_and_unknown_kinds_are_dead_at_once(store: Store) -> None:
    sink = Sink(fail={1: 1}, error=PermanentError("channel_not_found"))
    w = worker(store, sink)
    await put(store, 1)
    async with store.write() as conn:
        await outbox.enqueue(conn, "fax", "fax:1", {"n": 2})
    await drain(w)
    fax, reply = sorted(await rows(store), key=lambda r: r.kind)
    assert (reply.status, reply.last_error) == ("dead", "channel_not_found")
    assert (fax.status, fax.last_error) == ("dead", "no handler for 'fax'")
    assert sink.calls == [1]


async def test_root_updates_of_one_thread_coalesce_while_pending(store: Store) -> None:
    async def update_root(n: int) -> bool:
        async with store.write() as conn:
            return await outbox.enqueue(
                conn, "reply", "slack:C1", {"n": n}, ordering_key="T", coalesce_key="update:T"
            )

    assert await update_root(1)
    assert not await update_root(2)
    assert not await update_root(3)
    assert len(await rows(store)) == 1
    sink = Sink()
    await drain(worker(store, sink))
    assert sink.calls == [1]  # the handler renders the incident as it is now
    assert await update_root(4)  # once delivered, the next change is a new edit


async def test_rate_limited_reschedules_without_counting_an_attempt(store: Store) -> None:
    before = utcnow()  # the 429 is made (RateLimited counts Retry-After from then) after this
    sink = Sink(fail={1: 1}, error=RateLimited("slack 429", retry_after=30))
    w = worker(store, sink, max_attempts=1)
    await put(store, 1)
    await drain(w)
    after = utcnow()
    (row,) = await rows(store)
    assert (row.status, row.attempts) == ("pending", 0)
    # Retry-After from when the 429 came, however long the drain took
    assert (
        before + timedelta(seconds=30)
        <= aware(row.next_attempt_at)
        <= after + timedelta(seconds=30)
    )
    await make_due(store)
    await drain(w)
    (row,) = await rows(store)
    assert row.status == "done"  # max_attempts=1 was not used up by the 429


async def test_a_short_retry_after_is_waited_out_in_place_and_delivered_once(
    store: Store,
) -> None:
    """A 429 with a Retry-After under `wait_in_place_s`: the item keeps its claim, is tried
    again in the same pass no sooner than Retry-After after the answer, and is done."""
    tried: list[float] = []

    async def refused_once(item: Item) -> None:
        tried.append(time.monotonic())
        if len(tried) == 1:
            raise RateLimited("slack 429", retry_after=0.2)

    w = worker(store, refused_once, max_attempts=1, wait_in_place_s=1.0)
    await put(store, 1, destination="slack:C1")
    assert await w.run_once() == 1
    (row,) = await rows(store)
    assert (row.status, row.attempts, row.last_error) == ("done", 0, None)
    assert len(tried) == 2 and tried[1] - tried[0] >= 0.2
    assert await w.budget.take("slack:C1") == 0.0  # the hold is over
    assert await w.run_once() == 0


async def test_a_person_waiting_out_a_retry_after_leaves_the_peoples_slot_to_the_next(
    store: Store,
) -> None:
    """One slot for people's work: while the first person's message waits out a 429 in place,
    the next person's message (already waiting) goes, not after the worker's next poll."""
    order: list[int] = []
    all_tried = asyncio.Event()

    async def first_refused_once(item: Item) -> None:
        order.append(item.payload["n"])
        all_tried.set() if len(order) == 3 else None
        if order == [1]:
            w.wake(people=False)  # a webhook's news meanwhile: the worker looks while it is busy
            await asyncio.sleep(0.05)
            raise RateLimited("slack 429", retry_after=0.5)

    w = OutboxWorker(
        store,
        {"reply": first_refused_once},
        OutboxConfig(people_concurrency=1, wait_in_place_s=2.0),
        concurrency=0,  # the background lane is full: it takes nothing here
        poll_s=60,  # only a wake can start the second in time
    )
    async with store.write() as conn:
        for n, channel in ((1, "C1"), (2, "C2")):
            await outbox.enqueue(
                conn,
                "reply",
                f"slack:{channel}",
                {"n": n},
                ordering_key=channel,
                priority=Priority.PEOPLE,
            )
    running = asyncio.create_task(w.run())
    try:
        await asyncio.wait_for(all_tried.wait(), 10)
    finally:
        await w.stop()  # lets the deliveries under way finish
        running.cancel()
    assert order == [1, 2, 1]
    assert [r.status for r in await rows(store)] == ["done", "done"]


async def test_run_now_reschedules_a_refusal_instead_of_waiting_on_its_callers_time(
    store: Store,
) -> None:
    """`run_now` runs inside a webhook's answer: a 429 there is rescheduled, not waited out."""
    tried: list[int] = []

    async def refused(item: Item) -> None:
        tried.append(item.id)
        raise RateLimited("twilio 429", retry_after=0.2)

    w = worker(store, refused, wait_in_place_s=1.0)
    async with store.write() as conn:
        await outbox.enqueue(conn, "reply", "whatsapp:+1", {"n": 1}, incident_id="i1")
    await w.run_now("reply", ["i1"])
    (row,) = await rows(store)
    assert len(tried) == 1 and (row.status, row.attempts) == ("pending", 0)
    assert aware(row.next_attempt_at) > utcnow()


def test_token_bucket_with_a_controlled_clock() -> None:
    now = [100.0]
    bucket = TokenBucket(flat(2.0, 3), clock=lambda: now[0])
    assert [bucket.take("slack:C1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("slack:C1") == pytest.approx(0.5)
    assert bucket.take("slack:C2") == 0.0  # destinations have buckets of their own
    now[0] += 0.25
    assert bucket.take("slack:C1") == pytest.approx(0.25)  # half a token so far
    now[0] += 0.25
    assert bucket.take("slack:C1") == 0.0
    now[0] += 60
    assert [bucket.take("slack:C1") for _ in range(4)][-1] == pytest.approx(0.5)  # burst cap


async def test_sending_spends_the_budget_of_chat_destinations_not_the_consoles(
    store: Store,
) -> None:
    sink = Sink()

    async def send(item: Item) -> None:
        await w.spend(item.destination)
        await sink(item)

    w = worker(store, send, per_channel_rate=0.5, per_channel_burst=2)
    for n in (1, 2, 3):
        await put(store, n, thread=f"slack-{n}", destination="slack:C1")
    for n in (4, 5, 6):
        await put(store, n, thread=f"console-{n}", destination="console:console")
    before = utcnow()
    await drain(w)
    after = utcnow()
    assert sorted(sink.calls) == [1, 2, 4, 5, 6]
    held = next(r for r in await rows(store) if r.status == "pending")
    assert (held.payload["n"], held.attempts) == (3, 0)
    # the third message waits for a token: 2 s at half a token a second, from when it asked
    due = aware(held.next_attempt_at)
    assert before + timedelta(seconds=1.5) <= due <= after + timedelta(seconds=2)


async def test_a_leased_item_is_not_claimed_by_another_worker(store: Store) -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    calls: list[str] = []

    def holding(name: str) -> Callable[[Item], Awaitable[None]]:
        async def handler(item: Item) -> None:
            calls.append(name)
            started.set()
            await release.wait()

        return handler

    first = worker(store, holding("first"), lease_s=60)
    second = worker(store, holding("second"), lease_s=60)
    await put(store, 1)
    running = asyncio.create_task(first.run_once())
    await asyncio.wait_for(started.wait(), 5)
    (row,) = await rows(store)
    assert row.locked_by == first.worker_id
    assert aware(row.locked_until) > utcnow() + timedelta(seconds=50)
    assert await second.run_once() == 0
    release.set()
    assert await running == 1
    assert calls == ["first"]
    assert [r.status for r in await rows(store)] == ["done"]


async def test_background_worker_delivers_on_wake_and_stops_cleanly(store: Store) -> None:
    got = asyncio.Event()

    async def handler(item: Item) -> None:
        got.set()

    w = worker(store, handler, lease_s=60)
    w.poll_s = 60  # only a wake can make it look again within this test's deadline
    task = asyncio.create_task(w.run())
    await asyncio.sleep(0)
    await put(store, 1)
    w.wake()
    await asyncio.wait_for(got.wait(), 5)
    await w.stop()
    await asyncio.wait_for(task, 5)
    assert [r.status for r in await rows(store)] == ["done"]


async def test_claims_go_by_priority_then_age(store: Store) -> None:
    seen: list[str] = []

    async def handler(item: Item) -> None:
        seen.append(item.kind)

    kinds = ["postmortem", "diagnose", "diagnose", "reply", "inbound", "post_root"]
    async with store.write() as conn:
        for n, kind in enumerate(kinds):
            await outbox.enqueue(conn, kind, kind, {"n": n}, ordering_key=f"k{n}")
    w = OutboxWorker(store, dict.fromkeys(kinds, handler), OutboxConfig())
    assert await w.run_once() == len(kinds)  # handlers start in the order of the claim
    assert seen == ["inbound", "reply", "post_root", "diagnose", "diagnose", "postmortem"]


async def test_a_persons_message_is_handled_while_every_background_slot_is_busy(
    store: Store,
) -> None:
    release, handled, both = asyncio.Event(), asyncio.Event(), asyncio.Event()
    started: list[int] = []

    async def diagnose(item: Item) -> None:
        started.append(item.payload["n"])
        if len(started) == 2:
            both.set()
        await release.wait()

    async def inbound(item: Item) -> None:
        handled.set()

    async with store.write() as conn:
        for n in range(500):
            await outbox.enqueue(conn, "diagnose", "diagnose", {"n": n}, ordering_key=f"d{n}")
    w = OutboxWorker(
        store, {"diagnose": diagnose, "inbound": inbound}, OutboxConfig(lease_s=60), concurrency=2
    )
    task = asyncio.create_task(w.run())
    await asyncio.wait_for(both.wait(), 10)
    async with store.write() as conn:
        await outbox.enqueue(conn, "inbound", "router", {"n": -1}, ordering_key="person")
    w.wake()
    await asyncio.wait_for(handled.wait(), 10)
    assert len(started) == 2  # both background slots still held by their diagnoses
    release.set()
    await w.stop()
    task.cancel()


def test_worker_health_reports_a_stall_only_while_work_is_due() -> None:
    now = [0.0]
    health = WorkerHealth(clock=lambda: now[0])
    now[0] = 500.0
    assert health.problem(stall_s=120, due=0) is None  # idle is not stalled
    assert "no progress for 500 s with 3 item(s) due" in str(health.problem(120, due=3))
    health.progressed()
    now[0] += 60
    assert health.problem(120, due=3) is None
    health.crashed()
    assert "restarting" in str(health.problem(120, due=0))
    health.restarted()
    assert health.problem(120, due=3) is None and health.restarts == 1


def test_each_platform_posts_at_its_documented_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(OutboxConfig().limits, clock=lambda: now[0])
    # Slack: about 1 a second per channel, bursts of 3; Discord: 5 per 5 s per channel;
    # WhatsApp: Meta's pair rate, about 1 message every 6 s to one number
    for destination, burst, wait in (
        ("slack:C1", 3, 1.0),
        ("discord:123", 5, 1.0),
        ("whatsapp:+15550001", 3, 6.0),
    ):
        assert [bucket.take(destination) for _ in range(burst)] == [0.0] * burst
        assert bucket.take(destination) == pytest.approx(wait)
    bucket.hold("whatsapp:+15550002", 12)  # a 429's Retry-After, at WhatsApp's rate too
    now[0] += 11.9
    assert bucket.take("whatsapp:+15550002") > 0
    now[0] += 0.1
    assert bucket.take("whatsapp:+15550002") == 0.0


def test_a_platforms_rate_is_configured_without_losing_the_others() -> None:
    cfg = OutboxConfig.model_validate({"rates": {"discord": {"rate": 2, "burst": 10}}})
    assert cfg.limits("discord:123") == (2, 10)
    assert cfg.limits("whatsapp:+15550001") == pytest.approx((1 / 6, 3))
    assert cfg.limits("slack:C1") == (cfg.per_channel_rate, cfg.per_channel_burst)
    with pytest.raises(ValidationError, match="rates"):
        OutboxConfig.model_validate({"rates": {"teams": {"rate": 1, "burst": 1}}})


def test_a_held_bucket_gives_no_token_until_the_hold_is_over() -> None:
    now = [0.0]
    bucket = TokenBucket(flat(1.0, 3), clock=lambda: now[0])
    bucket.hold("slack:C1", 30)
    assert bucket.take("slack:C1") == pytest.approx(30)
    assert bucket.take("slack:C2") == 0.0  # other destinations are not held
    now[0] += 29.5
    assert bucket.take("slack:C1") == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take("slack:C1") == 0.0
