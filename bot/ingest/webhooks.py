"""Alert webhooks: verify → read → parse → persist (delivery + incidents + outbox) → 2xx.

Status codes are a protocol with the sender: 5xx makes Alertmanager and SNS retry, 4xx drops.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from bot.app import metrics
from bot.app.runtime import Runtime
from bot.app.server.inbound import (
    check_content_type,
    check_depth,
    check_token,
    parse_json,
    read_body,
)
from bot.incidents.ingest import Raced
from bot.ingest.writer import Delivery, Rejected
from integrations.alerts import Alert, alertmanager, sns, sources
from integrations.errors import PayloadError, SignatureError, TransientError

log = structlog.get_logger(__name__)
router = APIRouter()
T = TypeVar("T")
JSON_TYPES = ("application/json",)
SNS_TYPES = ("text/plain", "application/json")


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def _read(request: Request, types: tuple[str, ...]) -> tuple[Runtime, bytes]:
    rt = _runtime(request)
    check_token(request, rt.cfg.webhooks.token)
    check_content_type(request, types)
    return rt, await read_body(request, rt.cfg.http.max_body_bytes)


def _parse(source: str, parser: Callable[[Any], T], data: Any) -> T:
    try:
        return parser(data)
    except PayloadError as exc:
        metrics.WEBHOOKS.labels(source=source, outcome="invalid").inc()
        message = str(exc)
        if exc.field and exc.field not in message:
            message = f"{exc.field}: {message}"
        raise HTTPException(422, message) from exc


async def persist(
    rt: Runtime, source: str, idem_key: str, body: bytes, alerts: list[Alert]
) -> JSONResponse:
    """Record the delivery once, apply its alerts and queue what follows, through the
    group-commit writer: the answer comes after the COMMIT that holds it. A repeat of a
    stored delivery (a sender's retry, even one racing the first) is a duplicate."""
    try:
        result = await rt.ingest.submit(Delivery(source, idem_key, body, alerts))
    except Rejected as exc:
        metrics.WEBHOOKS.labels(source=source, outcome="invalid").inc()
        raise HTTPException(422, str(exc)) from exc
    except Raced as exc:  # other replicas kept opening these groups first: the sender retries
        raise HTTPException(503, "conflicting concurrent deliveries, retry") from exc
    if result is None:
        return _duplicate(source)
    metrics.WEBHOOKS.labels(source=source, outcome="accepted").inc()
    metrics.ALERTS_RECEIVED.labels(source=source).inc(len(alerts))
    # state changes only: a storm's re-notifications of open incidents would drown them
    for change, ids in (
        ("opened", result.opened),
        ("resolved", result.resolved),
        ("reopened", result.reopened),
    ):
        for iid in ids:
            log.info(f"incident.{change}", incident=iid, source=source)
    return JSONResponse(
        {
            "status": "ok",
            "incidents": result.incident_ids,
            "opened": len(result.opened),
            "updated": len(result.updated),
            "resolved": len(result.resolved),
            "reopened": len(result.reopened),
        }
    )


def _duplicate(source: str) -> JSONResponse:
    metrics.WEBHOOKS.labels(source=source, outcome="duplicate").inc()
    return JSONResponse({"status": "duplicate", "incidents": []})


def _delivery_key(digest: str, alerts: list[Alert]) -> str:
    """The body's digest identifies a delivery only when the sender dated its alerts: a cron
    check re-posts the same untimed JSON for every outage, and a repeat of it is an update
    (or a no-op resolve) anyway."""
    if all(alert.timed for alert in alerts):
        return digest
    return f"untimed-{uuid.uuid4().hex}"


async def _parse_and_persist(
    request: Request,
    source: str,
    parser: Callable[[Any], list[Alert]],
    exact: Callable[[bytes], list[Alert] | None] = lambda _: None,
) -> JSONResponse:
    """`exact` may read the sender's own form straight from the bytes; what it declines,
    `parser` reads from the JSON (and explains, when it cannot)."""
    rt, body = await _read(request, JSON_TYPES)
    digest = hashlib.sha256(body).hexdigest()
    if rt.ingest.stored(source, digest):  # a repeat (a retry, an HA twin): nothing to parse
        return _duplicate(source)
    check_depth(body, rt.cfg.http.max_json_depth)
    alerts = exact(body)
    if alerts is None:
        alerts = _parse(source, parser, parse_json(body))
    return await persist(rt, source, _delivery_key(digest, alerts), body, alerts)


@router.post("/webhooks/alertmanager")
async def alertmanager_webhook(request: Request) -> JSONResponse:
    return await _parse_and_persist(
        request, "alertmanager", alertmanager.parse, alertmanager.parse_exact
    )


@router.post("/webhooks/generic")
async def generic_webhook(request: Request) -> JSONResponse:
    """The contract's shape, any named sender's body (recognised by its shape), or any JSON
    object with something that reads as a title."""
    return await _parse_and_persist(request, "generic", sources.parse_any)


@router.post("/webhooks/custom/{name}")
async def custom_webhook(request: Request, name: str) -> JSONResponse:
    """Any JSON, mapped by `webhooks.mappings.<name>` in the configuration."""
    rt = _runtime(request)
    check_token(request, rt.cfg.webhooks.token)
    mapping = rt.cfg.webhooks.mapping(name)
    if mapping is None:
        raise HTTPException(404, f"no webhooks.mappings.{name} in the configuration")
    return await _parse_and_persist(request, mapping.source, mapping.parse)


@router.post("/webhooks/sns")
async def sns_webhook(request: Request) -> JSONResponse:
    rt, body = await _read(request, SNS_TYPES)
    check_depth(body, rt.cfg.http.max_json_depth)
    env = _parse("sns", sns.parse_envelope, parse_json(body))
    try:
        await rt.sns_verifier.verify(env)
    except SignatureError as exc:
        metrics.WEBHOOKS.labels(source="sns", outcome="bad_signature").inc()
        raise HTTPException(401, f"SNS signature rejected: {exc}") from exc
    except TransientError as exc:
        raise HTTPException(503, f"could not fetch the SNS signing certificate: {exc}") from exc
    topics = rt.cfg.webhooks.sns_topics
    if topics and env.TopicArn not in topics:
        raise HTTPException(403, f"topic {env.TopicArn} is not in webhooks.sns_topics")
    if env.Type == "SubscriptionConfirmation":
        if not topics:
            raise HTTPException(
                403, "no webhooks.sns_topics configured: subscription not confirmed"
            )
        await _confirm(env.SubscribeURL or "")
        log.info("sns.subscribed", topic=env.TopicArn)
        return JSONResponse({"status": "confirmed", "topic": env.TopicArn})
    if env.Type == "UnsubscribeConfirmation":
        log.warning("sns.unsubscribed", topic=env.TopicArn)
        return JSONResponse({"status": "unsubscribed", "topic": env.TopicArn})
    alerts = _parse("sns", sns.parse_alarm, env)
    return await persist(rt, "sns", env.MessageId, body, alerts)


@router.post("/webhooks/{source}")
async def named_webhook(request: Request, source: str) -> JSONResponse:
    """A sender's own documented body: /webhooks/grafana, /webhooks/azure, ..."""
    check_token(request, _runtime(request).cfg.webhooks.token)
    parser = sources.NAMED.get(source)
    if parser is None:
        known = ", ".join(sorted({*sources.NAMED, "generic", "sns"}))
        raise HTTPException(404, f"no webhook for {source!r}; known senders: {known}")
    return await _parse_and_persist(request, source, parser)


async def _confirm(url: str) -> None:
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.get(url)
            resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise HTTPException(503, f"could not confirm the SNS subscription: {exc}") from exc
