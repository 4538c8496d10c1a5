"""Storm benchmark: 200 Alertmanager groups fire at once into one Slack channel, then resolve.

    python bench/storm.py [--groups 200] [--rounds 10] [--senders 8] [--alerts 5] [--refusals 20]
        [--timeline]
    python bench/storm.py --ack [--incidents 10000] [--acks 20]

Default mode: `opsbot run` posts to a local fake Slack through the real slack_sdk; the fake answers
the first `--refusals` calls (20 by default; 0: a platform that never refuses) with 429
Retry-After: 1. Each group gets `--alerts` new alerts per round (10,000 alerts in 2,000
notifications by default), then every group resolves. Measured from the fake's side: when each
incident is first named in the channel, when the outbox is empty, Slack calls per incident, the
most edits of one message, incidents given two roots; `--timeline` lists every Slack call.
Goals: named within 10 s of its first alert, outbox empty within 60 s of the last notification,
<= 2 calls per incident, <= 20 edits of one message, no incident with two roots.

`--ack` mode: the embedded default (console only) ingests `--incidents` incidents, then "ack" is
typed in `--acks` of them through the console API; measures how long each takes to take effect.
Goal: p95 under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ingest import free_port, wait_ready
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack

CHANNEL = "C0STORM"
DRAIN_TIMEOUT_S = 300.0
RETRY_AFTER_S = 1.0  # what the fake's refusals say
GOAL_VISIBLE_S, GOAL_DRAIN_S, GOAL_CALLS, GOAL_EDITS, GOAL_ACK_P95_S = 10.0, 60.0, 2.0, 20, 1.0


class TimedSlack(FakeSlack):
    """The fake Slack, stamping each chat call it accepted, and every call with its answer."""

    def __init__(self) -> None:
        super().__init__()
        self.stamped: list[tuple[float, str, dict]] = []
        self.answered: list[tuple[float, str, int]] = []

    async def _api(self, request: web.Request) -> web.StreamResponse:
        response = await super()._api(request)
        call, now = self._calls[-1], time.monotonic()
        self.answered.append((now, call.method, response.status))
        if response.status == 200 and call.method.startswith("chat."):
            self.stamped.append((now, call.method, call.params))
        return response


def group_name(i: int) -> str:
    return f"StormAlert{i:03d}"


def notification(i: int, round_: int, alerts: int, status: str) -> bytes:
    name = group_name(i)
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{name}"}}',
            "status": status,
            "receiver": "opsbot",
            "groupLabels": {"alertname": name},
            "commonLabels": {"alertname": name, "service": f"svc-{i % 12}"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": [
                {
                    "status": status,
                    "labels": {
                        "alertname": name,
                        "service": f"svc-{i % 12}",
                        "severity": ("critical", "warning", "info")[i % 3],
                        "instance": f"{name}-{n:03d}",
                    },
                    "annotations": {"summary": f"{name} instance {n}"},
                    "startsAt": "2026-01-01T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": f"{name}-{n:03d}",
                }
                for n in range((round_ + 1) * alerts)
            ],
        }
    ).encode()


def start_bot(workdir: Path, port: int, extra: str) -> subprocess.Popen[bytes]:
    config = workdir / "opsbot.yaml"
    config.write_text(
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        f"storage: {{url: 'sqlite:///{workdir}/storm.db'}}\n{extra}"
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        stdout=(workdir / "opsbot.log").open("wb"),
        stderr=subprocess.STDOUT,
        env={**env, "OPSBOT_LOG_LEVEL": "WARNING"},
    )


async def send_all(client: httpx.AsyncClient, bodies: list[bytes], senders: int) -> list[str]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    errors: list[str] = []

    async def sender() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            resp = await client.post(
                "/webhooks/alertmanager", content=body, headers={"content-type": "application/json"}
            )
            if resp.status_code != 200:
                errors.append(f"{resp.status_code} {resp.text[:120]}")

    await asyncio.gather(*(sender() for _ in range(senders)))
    return errors


async def wait_drained(client: httpx.AsyncClient) -> float:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        if (await client.get("/stats")).json()["outbox"]["pending"] == 0:
            return time.monotonic()
        await asyncio.sleep(0.2)
    return float("nan")


def payload_text(params: dict) -> str:
    blocks = params.get("blocks")
    return str(params.get("text", "")) + (blocks if isinstance(blocks, str) else json.dumps(blocks))


async def storm(args: argparse.Namespace) -> int:
    slack = TimedSlack()
    await slack.start()
    if args.refusals:
        slack.fail_next(args.refusals, status=429, retry_after=RETRY_AFTER_S)
    slack_cfg = (
        f"slack: {{bot_token: {BOT_TOKEN}, signing_secret: {SIGNING_SECRET}, "
        f"api_url: '{slack.api_url}'}}\nroutes: [{{match: {{}}, slack: [{CHANNEL}]}}]\n"
    )
    with tempfile.TemporaryDirectory(prefix="opsbot-storm-") as tmp:
        port = int(os.environ.get("STORM_PORT", "0")) or free_port()
        proc = start_bot(Path(tmp), port, slack_cfg)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                await wait_ready(str(client.base_url), proc)
                first_sent: dict[str, float] = {}
                errors: list[str] = []
                started = time.monotonic()
                for r in range(args.rounds):
                    now = time.monotonic()
                    for i in range(args.groups):
                        first_sent.setdefault(group_name(i), now)
                    bodies = [notification(i, r, args.alerts, "firing") for i in range(args.groups)]
                    errors += await send_all(client, bodies, args.senders)
                resolves = [
                    notification(i, args.rounds - 1, args.alerts, "resolved")
                    for i in range(args.groups)
                ]
                errors += await send_all(client, resolves, args.senders)
                last_sent = time.monotonic()
                drained = await wait_drained(client)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            await slack.stop()
    return report_storm(args, slack, first_sent, started, last_sent, drained, errors)


def report_storm(
    args: argparse.Namespace,
    slack: TimedSlack,
    first_sent: dict[str, float],
    started: float,
    last_sent: float,
    drained: float,
    errors: list[str],
) -> int:
    named: dict[str, float] = {}
    roots: dict[str, int] = {name: 0 for name in first_sent}
    edits: dict[str, int] = {}
    for at, method, params in slack.stamped:
        text = payload_text(params)
        mentioned = [name for name in first_sent if name in text]
        for name in mentioned:
            named.setdefault(name, at)
        if method == "chat.postMessage" and not params.get("thread_ts") and len(mentioned) == 1:
            roots[mentioned[0]] += 1
        if method == "chat.update":
            edits[str(params.get("ts"))] = edits.get(str(params.get("ts")), 0) + 1
    delays = sorted(named[n] - first_sent[n] for n in named)
    missing = len(first_sent) - len(named)
    calls = len(slack.stamped)
    worst = max(delays) if delays else float("nan")
    within = sum(d <= GOAL_VISIBLE_S for d in delays)
    print(
        f"storm: {args.groups} groups x {args.rounds} rounds, {args.senders} senders, "
        f"sent in {last_sent - started:.1f} s, {len(errors)} non-2xx"
    )
    print(
        f"named in the channel: {len(named)}/{len(first_sent)} "
        f"(within {GOAL_VISIBLE_S:g} s: {within}); delay p50 "
        f"{statistics.median(delays) if delays else float('nan'):.1f} s, max {worst:.1f} s"
    )
    print(f"outbox empty {drained - last_sent:.1f} s after the last notification")
    print(timeline(slack, started, max(named.values(), default=float("nan")), args.timeline))
    print(
        f"Slack chat calls: {calls} ({calls / args.groups:.2f} per incident); "
        f"most edits of one message: {max(edits.values(), default=0)}; "
        f"incidents with two roots or more: {sum(n > 1 for n in roots.values())}"
    )
    met = (
        not missing
        and not errors
        and worst <= GOAL_VISIBLE_S
        and drained - last_sent <= GOAL_DRAIN_S
        and calls / args.groups <= GOAL_CALLS
        and max(edits.values(), default=0) <= GOAL_EDITS
        and not any(n > 1 for n in roots.values())
    )
    print("goals: " + ("met" if met else "MISSED"))
    return 0 if met else 1


def timeline(slack: TimedSlack, started: float, all_named: float, every_call: bool) -> str:
    """When Slack was first called, refused (429) and first accepted a chat call, and when the
    last incident was named: seconds after the first alert was sent."""
    calls = [(at - started, method, status) for at, method, status in slack.answered]
    refused = [at for at, _, status in calls if status == 429]
    accepted = next((at for at, method, status in calls if status == 200 and "chat." in method), 0)
    lines = [f"  +{at:6.2f} s  {method} {status}" for at, method, status in calls]
    summary = (
        f"timeline (s after the first alert): first Slack call +{calls[0][0]:.2f} "
        f"({calls[0][1]}), {len(refused)} refused (429) "
        + (f"+{refused[0]:.2f}..+{refused[-1]:.2f}, " if refused else "")
        + f"first chat call accepted +{accepted:.2f}, all named +{all_named - started:.2f} "
        f"(Retry-After floor +{calls[0][0] + len(refused) * RETRY_AFTER_S:.2f})"
        if calls
        else "timeline: no Slack call"
    )
    return "\n".join([summary, *lines] if every_call else [summary])


async def ack_bench(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="opsbot-ack-") as tmp:
        port = free_port()
        proc = start_bot(Path(tmp), port, "")
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                await wait_ready(str(client.base_url), proc)
                bodies = [
                    notification(i, 0, 1, "firing").replace(b"StormAlert", b"AckAlert%05d-" % i)
                    for i in range(args.incidents)
                ]
                errors = await send_all(client, bodies, args.senders)
                listing = (
                    await client.get("/api/incidents", params={"status": "triggered"})
                ).json()["incidents"]
                targets = [inc["id"] for inc in listing[: args.acks]]
                took: list[float] = []
                for inc_id in targets:
                    t0 = time.monotonic()
                    await client.post(f"/api/incidents/{inc_id}/messages", json={"text": "ack"})
                    while (await client.get(f"/api/incidents/{inc_id}")).json()[
                        "status"
                    ] != "acknowledged":
                        if time.monotonic() - t0 > 120:
                            break
                        await asyncio.sleep(0.02)
                    took.append(time.monotonic() - t0)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    took.sort()
    p95 = took[max(0, int(len(took) * 0.95) - 1)] if took else float("nan")
    print(
        f"ack: {len(targets)} acks after {args.incidents} incidents ({len(errors)} non-2xx); "
        f"p50 {statistics.median(took):.3f} s, p95 {p95:.3f} s, max {max(took):.3f} s"
    )
    met = p95 < GOAL_ACK_P95_S and len(targets) == args.acks
    print("goal: " + ("met" if met else "MISSED"))
    return 0 if met else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--alerts", type=int, default=5, help="new alerts per group per round")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument(
        "--refusals", type=int, default=20, help="Slack calls answered 429 Retry-After: 1 first"
    )
    parser.add_argument("--timeline", action="store_true", help="list every Slack call")
    parser.add_argument("--ack", action="store_true", help="measure ack under a backlog instead")
    parser.add_argument("--incidents", type=int, default=10000)
    parser.add_argument("--acks", type=int, default=20)
    args = parser.parse_args()
    sys.exit(asyncio.run(ack_bench(args) if args.ack else storm(args)))


if __name__ == "__main__":
    main()
