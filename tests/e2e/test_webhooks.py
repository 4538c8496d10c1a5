"""Every HTTP endpoint of the foundation over real HTTP, and every kind of bad input a sender
can throw at the webhooks: the answer is always a deliberate 4xx, never a 500."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.sns_certs import SnsSigner

WEBHOOKS = ("/webhooks/alertmanager", "/webhooks/sns", "/webhooks/generic")
MIB = 1024 * 1024
GENERIC = {"incident_id": "INC-1", "service": "checkout", "alert_type": "5xx", "severity": "high"}


def _metric(exposition: str, name: str, labels: str) -> float:
    """The value of one sample (`name{labels}`) in a Prometheus text exposition, 0 if absent."""
    prefix = f"{name}{{{labels}}} "
    for line in exposition.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def _oversized_am(sample_am: dict) -> bytes:
    body = copy.deepcopy(sample_am)
    body["alerts"][0]["annotations"]["description"] = "x" * (MIB + 10)
    return json.dumps(body).encode()


# ---- ops endpoints ----------------------------------------------------------------------------


async def test_healthz_and_readyz_answer(bot: RunningBot) -> None:
    assert (await bot.client.get("/healthz")).json() == {"status": "ok"}
    ready = await bot.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "replica": bot.runtime.replica.id,
        "leader": False,  # this fixture drives the runtime by hand: no campaign runs
    }


@pytest.fixture
async def bot_on_vanishing_disk(
    tmp_path: Path, bot_config: Callable[..., Config]
) -> AsyncIterator[tuple[RunningBot, Path]]:
    """A bot whose SQLite file lives in a directory the test can take away (a lost volume)."""
    volume = tmp_path / "volume"
    volume.mkdir()
    cfg = bot_config(storage={"url": f"sqlite:///{volume / 'opsbot.db'}"})
    async with run_bot(cfg) as running:
        yield running, volume


async def test_store_unreachable_gives_503_and_liveness_stays_up(
    bot_on_vanishing_disk: tuple[RunningBot, Path], sample_am: dict
) -> None:
    bot, volume = bot_on_vanishing_disk
    assert (await bot.client.get("/readyz")).status_code == 200
    # The volume goes away; the pool's open connections are dropped, as after a reconnect.
    shutil.rmtree(volume)
    await bot.runtime.store.engine.dispose()

    ready = await bot.client.get("/readyz")
    assert ready.status_code == 503
    assert "store" in ready.json()["error"]
    # Alertmanager retries on 5xx: a transient fault of ours must not be a 4xx (nor a 500).
    hook = await bot.client.post("/webhooks/alertmanager", json=sample_am)
    assert hook.status_code == 503
    assert hook.headers["retry-after"]
    assert (await bot.client.get("/healthz")).status_code == 200


async def test_metrics_exposition_counts_received_alerts(bot: RunningBot, sample_am: dict) -> None:
    before = (await bot.client.get("/metrics")).text
    two = copy.deepcopy(sample_am)
    second = copy.deepcopy(two["alerts"][0])
    second["fingerprint"] = "eeeeffff00001111"
    two["alerts"].append(second)
    assert (await bot.client.post("/webhooks/alertmanager", json=two)).status_code == 200

    resp = await bot.client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    for family in (
        "opsbot_alerts_received_total",
        "opsbot_webhooks_total",
        "opsbot_outbox_pending",
        "opsbot_http_request_seconds",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
    source = 'source="alertmanager"'
    received = _metric(text, "opsbot_alerts_received_total", source)
    assert received - _metric(before, "opsbot_alerts_received_total", source) == 2


async def test_webhook_routes_answer_like_every_route(bot: RunningBot, sample_am: dict) -> None:
    """Alert webhooks take a fast lane past FastAPI's routing: their answers, errors and
    request metrics are still the server's own."""
    assert (await bot.client.post("/webhooks/alertmanager", json=sample_am)).status_code == 200
    assert (await bot.client.get("/webhooks/alertmanager")).status_code == 405
    unknown = await bot.client.post("/webhooks/nagios", json={"title": "x"})
    assert unknown.status_code == 404 and "known senders" in unknown.json()["error"]
    bad = await bot.client.post("/webhooks/alertmanager", json={"alerts": [{"labels": 3}]})
    assert bad.status_code == 422 and "alerts.0.labels" in bad.json()["error"]
    text = (await bot.client.get("/metrics")).text
    timed = 'method="POST",route="/webhooks/alertmanager",status="200"'
    assert _metric(text, "opsbot_http_request_seconds_count", timed) >= 1


async def test_stats_has_the_contract_shape(bot: RunningBot, sample_am: dict) -> None:
    empty = (await bot.client.get("/stats")).json()
    assert empty == {
        "incidents": {"triggered": 0, "acknowledged": 0, "resolved": 0},
        "diagnoses": {"live": 0, "fallback": 0, "cache": 0, "offline": 0, "static": 0},
        "user_dropped_count": 0,
        "mtta_s": None,
        "mttr_s": None,
        "outbox": {
            "pending": 0,
            "failed": 0,
            "due": 0,
            "lag_s": 0.0,
            "last_success_at": None,
            "worker_restarts": 0,
            "worker_running": True,
        },
        "messages": {"sent": 0, "delivered": 0, "read": 0, "failed": 0, "undelivered": 0},
        "storms": [],
    }
    assert (await bot.client.post("/webhooks/alertmanager", json=sample_am)).status_code == 200
    queued = (await bot.client.get("/stats")).json()
    assert queued["incidents"]["triggered"] == 1
    assert queued["outbox"]["pending"] > 0

    await bot.settle()
    settled = (await bot.client.get("/stats")).json()
    assert (settled["outbox"]["pending"], settled["outbox"]["failed"]) == (0, 0)
    assert settled["user_dropped_count"] == 0


# ---- incidents API ----------------------------------------------------------------------------


async def test_incidents_api_lists_filters_and_finds_by_id_or_short_id(
    bot: RunningBot, sample_am: dict
) -> None:
    other = copy.deepcopy(sample_am)
    other["groupKey"] = '{}:{alertname="DiskFull"}'
    other["alerts"][0]["status"] = "resolved"
    first = await bot.client.post("/webhooks/alertmanager", json=sample_am)
    (incident_id,) = first.json()["incidents"]
    assert (await bot.client.post("/webhooks/alertmanager", json=other)).status_code == 200

    listed = (await bot.client.get("/api/incidents")).json()["incidents"]
    assert [i["id"] for i in listed] == [incident_id]
    inc = listed[0]
    for key in (
        "id",
        "short_id",
        "title",
        "status",
        "severity",
        "service",
        "labels",
        "source",
        "created_at",
        "acknowledged_at",
        "resolved_at",
        "alert_count",
    ):
        assert key in inc, key
    assert (inc["short_id"], inc["status"], inc["severity"]) == (1, "triggered", "critical")
    assert (inc["service"], inc["source"], inc["alert_count"]) == ("checkout", "alertmanager", 1)

    triggered = await bot.client.get("/api/incidents", params={"status": "triggered"})
    assert [i["id"] for i in triggered.json()["incidents"]] == [incident_id]
    resolved = await bot.client.get("/api/incidents", params={"status": "resolved"})
    assert resolved.json()["incidents"] == []
    bad = await bot.client.get("/api/incidents", params={"status": "open"})
    assert bad.status_code == 422
    assert "status" in bad.text

    for ref in (incident_id, "1", "%231"):
        detail = await bot.client.get(f"/api/incidents/{ref}")
        assert detail.status_code == 200, ref
        body = detail.json()
        assert body["id"] == incident_id
        for key in ("timeline", "threads", "diagnoses", "actions", "tickets"):
            assert isinstance(body[key], list), key
        assert body["timeline"][0]["kind"] == "triggered"
        assert set(body["timeline"][0]) >= {"at", "kind", "actor", "text"}
    for ref in ("2", "0123456789abcdef0123456789abcdef", "%2399"):
        assert (await bot.client.get(f"/api/incidents/{ref}")).status_code == 404, ref


# ---- the three webhooks accept good input -------------------------------------------------------


async def test_each_webhook_accepts_its_payload(bot: RunningBot, sample_am: dict) -> None:
    am = await bot.client.post("/webhooks/alertmanager", json=sample_am)
    assert am.status_code == 200
    assert am.json()["opened"] == 1
    generic = await bot.client.post("/webhooks/generic", json=GENERIC)
    assert generic.status_code == 200
    assert generic.json()["opened"] == 1
    listed = (await bot.client.get("/api/incidents")).json()["incidents"]
    assert sorted(i["source"] for i in listed) == ["alertmanager", "generic"]


# ---- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WEBHOOKS)
@pytest.mark.parametrize("body", [b"{not json", b"", b'{"a": 1', b"\xff\xfe\x00garbage"])
async def test_malformed_json_is_400(bot: RunningBot, path: str, body: bytes) -> None:
    resp = await bot.client.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert "JSON" in resp.json()["error"]


async def test_schema_errors_are_422_naming_the_field(bot: RunningBot, sample_am: dict) -> None:
    bad_status = copy.deepcopy(sample_am)
    bad_status["alerts"][0]["status"] = "exploded"
    bad_time = copy.deepcopy(sample_am)
    bad_time["alerts"][0]["startsAt"] = "yesterday"
    cases: list[tuple[str, Any, str]] = [
        ("/webhooks/alertmanager", bad_status, "alerts.0.status"),
        ("/webhooks/alertmanager", bad_time, "alerts.0.startsAt"),
        ("/webhooks/alertmanager", {**sample_am, "groupKey": ["g"]}, "groupKey"),
        ("/webhooks/grafana", {"ruleName": "disk full", "state": 5}, "state"),
        ("/webhooks/pagerduty", {"event_action": "trigger", "dedup_key": "k"}, "payload"),
        ("/webhooks/generic", {"severity": "high"}, "service"),
        ("/webhooks/generic", {**GENERIC, "timestamp": "not a time"}, "timestamp"),
        ("/webhooks/sns", {"Type": "Notification", "TopicArn": "arn:x"}, "MessageId"),
    ]
    for path, body, field in cases:
        resp = await bot.client.post(path, json=body)
        assert resp.status_code == 422, (path, field, resp.text)
        assert field in resp.json()["error"], (path, field, resp.text)
    assert (await bot.client.get("/api/incidents")).json()["incidents"] == []


@pytest.mark.parametrize("path", WEBHOOKS)
async def test_body_over_one_mib_is_413(bot: RunningBot, path: str, sample_am: dict) -> None:
    body = _oversized_am(sample_am)
    resp = await bot.client.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 413, resp.text


async def test_chunked_body_over_one_mib_is_413(bot: RunningBot, sample_am: dict) -> None:
    body = _oversized_am(sample_am)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    resp = await bot.client.post(
        "/webhooks/alertmanager", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in resp.request.headers
    assert resp.request.headers["transfer-encoding"] == "chunked"
    assert resp.status_code == 413, resp.text
    assert (await bot.client.get("/api/incidents")).json()["incidents"] == []


async def test_chunked_body_under_the_limit_is_accepted(bot: RunningBot, sample_am: dict) -> None:
    body = json.dumps(sample_am).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    resp = await bot.client.post(
        "/webhooks/alertmanager", content=chunks(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/webhooks/alertmanager", "text/plain"),
        ("/webhooks/alertmanager", "application/x-www-form-urlencoded"),
        ("/webhooks/generic", "text/plain; charset=UTF-8"),
        ("/webhooks/generic", None),
        ("/webhooks/sns", "application/xml"),
        ("/webhooks/sns", None),
    ],
)
async def test_wrong_content_type_is_415(
    bot: RunningBot, path: str, ctype: str | None, sample_am: dict
) -> None:
    headers = {"content-type": ctype} if ctype else {}
    resp = await bot.client.post(path, content=json.dumps(sample_am).encode(), headers=headers)
    assert resp.status_code == 415, resp.text


async def test_sns_accepts_text_plain_as_sns_sends_it(
    tmp_path: Path, bot_config: Callable[..., Config], sns_signer: SnsSigner
) -> None:
    cert = tmp_path / "sns.pem"
    cert.write_bytes(sns_signer.cert_pem)
    topic = "arn:aws:sns:us-east-1:123456789012:ops"
    cfg = bot_config(webhooks={"sns_topics": [topic], "sns_trusted_cert_file": str(cert)})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    envelope = sns_signer.sign(
        {
            "Type": "Notification",
            "MessageId": "m-text-plain",
            "TopicArn": topic,
            "Subject": "disk almost full",
            "Message": "disk on db-1 is 97% full",
            "Timestamp": now,
        }
    )
    async with run_bot(cfg) as bot:
        resp = await bot.client.post(
            "/webhooks/sns",
            content=json.dumps(envelope).encode(),
            headers={"content-type": "text/plain; charset=UTF-8"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["opened"] == 1


@pytest.fixture
async def token_bot(bot_config: Callable[..., Config]) -> AsyncIterator[RunningBot]:
    async with run_bot(bot_config(webhooks={"token": "s3cret-token"})) as running:
        yield running


@pytest.mark.parametrize("path", WEBHOOKS)
@pytest.mark.parametrize(
    "auth", [None, "Bearer wrong", "Bearer", "Basic czNjcmV0LXRva2Vu", "s3cret-token"]
)
async def test_webhook_token_required(token_bot: RunningBot, path: str, auth: str | None) -> None:
    headers = {"authorization": auth} if auth is not None else {}
    resp = await token_bot.client.post(path, json=GENERIC, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_webhook_token_accepted(token_bot: RunningBot, sample_am: dict) -> None:
    auth = {"authorization": "Bearer s3cret-token"}
    am = await token_bot.client.post("/webhooks/alertmanager", json=sample_am, headers=auth)
    assert am.status_code == 200, am.text
    generic = await token_bot.client.post("/webhooks/generic", json=GENERIC, headers=auth)
    assert generic.status_code == 200, generic.text
    # the API and ops endpoints are not behind the webhook token
    assert (await token_bot.client.get("/api/incidents")).status_code == 200


def _odd_bodies(sample_am: dict) -> dict[str, bytes]:
    depth = 100_000
    huge_key = copy.deepcopy(sample_am)
    huge_key["groupKey"] = "g" * 900_000
    huge_labels = copy.deepcopy(sample_am)
    huge_labels["alerts"][0]["labels"] = {f"l{i}": "v" * 100 for i in range(5000)}
    numeric_labels = copy.deepcopy(sample_am)
    numeric_labels["alerts"][0]["labels"] = {"alertname": 5, "severity": None}
    alerts_not_list = {**sample_am, "alerts": {"a": 1}}
    far_future = copy.deepcopy(sample_am)
    far_future["alerts"][0]["startsAt"] = "99999-01-01T00:00:00Z"
    unix_overflow = copy.deepcopy(sample_am)
    unix_overflow["alerts"][0]["startsAt"] = 1e300
    docs: dict[str, Any] = {
        "list": [sample_am],
        "null": None,
        "number": 42,
        "string": "alert!",
        "bool": True,
        "empty_object": {},
        "huge_group_key": huge_key,
        "many_labels": huge_labels,
        "numeric_labels": numeric_labels,
        "alerts_not_a_list": alerts_not_list,
        "year_99999": far_future,
        "unix_overflow": unix_overflow,
        "no_alerts": {**sample_am, "alerts": []},
    }
    bodies = {name: json.dumps(doc).encode() for name, doc in docs.items()}
    bodies["deep_array"] = b"[" * depth + b"]" * depth
    bodies["deep_object"] = b'{"a":' * depth + b"1" + b"}" * depth
    bodies["nan"] = b'{"version": NaN, "groupKey": Infinity, "alerts": []}'
    bodies["lone_surrogate"] = b'{"version": "4", "groupKey": "\\ud800", "alerts": []}'
    return bodies


async def test_odd_bodies_never_give_a_server_error(bot: RunningBot, sample_am: dict) -> None:
    answers: dict[str, dict[str, int]] = {}
    for name, body in _odd_bodies(sample_am).items():
        for path in WEBHOOKS:
            resp = await bot.client.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            answers.setdefault(name, {})[path] = resp.status_code
    server_errors = {
        name: codes for name, codes in answers.items() if any(c >= 500 for c in codes.values())
    }
    assert server_errors == {}, f"5xx answers to bad input: {server_errors}"
    assert all(c in (200, 400, 413, 422) for codes in answers.values() for c in codes.values())
    for name in ("list", "null", "number", "string", "bool", "alerts_not_a_list"):
        assert set(answers[name].values()) == {422}, (name, answers[name])
    assert (await bot.client.get("/healthz")).status_code == 200
