"""Actions from request to outcome: policy, approval, one run per approval, verification, audit.

State of an `actions` row: pending_approval → approved → running → succeeded | failed, or
denied / expired / refused. A running action names its `owner` (a replica); when that owner
dies, the action becomes `unknown`, said once in the thread, and is never re-run.
`inflight_key` (unique) holds one action per service+action at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Select, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_exponential

from agent.types import Intent
from bot.app.config import Config, ServiceConfig
from bot.app.wiring import executor_for
from bot.chat.messages import Button, Reply
from bot.incidents import lifecycle
from bot.incidents.models import Incident, aware, utcnow
from bot.incidents.policy import Actor, Outcome, allow_listed, decide_request, may_approve, may_deny
from bot.queue.outbox import Item
from bot.store import Store, inserted_id
from bot.store import schema as t
from integrations.actions.base import ActionParams, ActionResult, PlaceholderError
from integrations.errors import IntegrationError
from integrations.observability.health import HttpHealthSource
from integrations.observability.prometheus import PrometheusSource, expr_from_generator_url

log = structlog.get_logger(__name__)

VERB = {"restart": "restarting", "scale_up": "scaling up", "rollback": "rolling back"}
DONE = {"restart": "restarted", "scale_up": "scaled up", "rollback": "rolled back"}


async def audit(
    conn: AsyncConnection,
    actor: str,
    action: str,
    target: str,
    decision: str,
    reason: str,
    incident_id: str | None,
) -> None:
    await conn.execute(
        insert(t.audit).values(
            at=utcnow(),
            actor=actor,
            action=action,
            target=target,
            decision=decision,
            reason=reason,
            incident_id=incident_id,
        )
    )


def _ago(seconds: float) -> str:
    return f"{int(seconds)} s" if seconds < 120 else f"{int(seconds // 60)} min"


def _sentence(text: str) -> str:
    """Upper-case the first letter only: `str.capitalize` would lower "HTTP 503" and names."""
    return text[:1].upper() + text[1:]


def _params_text(row_params: dict[str, Any]) -> str:
    if row_params.get("replicas") is not None:  # 0 is a count too
        return f" to {row_params['replicas']} replicas"
    if row_params.get("delta"):
        return f" by {row_params['delta']}"
    return ""


async def request(
    conn: AsyncConnection,
    cfg: Config,
    inc: Incident,
    actor: Actor,
    intent: Intent,
    *,
    auto: bool = False,
) -> Reply:
    """Turn an operator's action intent into a refusal, an approval prompt or a queued run."""
    action = intent.action.value if intent.action else ""
    target = intent.service or inc.service
    services = ", ".join(sorted(cfg.services)) or "none configured"
    if target in (None, "", "*"):
        why = "name one service" if target == "*" else "this incident has no known service"
        await audit(conn, actor.id, action, str(target), "refused", why, inc.id)
        return Reply(
            f"🚫 I won't {action.replace('_', ' ')} that: {why}. Services: {services}.", "error"
        )
    if target not in cfg.services:
        await audit(conn, actor.id, action, target, "refused", "unknown service", inc.id)
        return Reply(
            f"🚫 There is no service called `{target}`. Services I know: {services}.", "error"
        )
    decision = decide_request(cfg, actor, target, action, intent.replicas)
    if decision.outcome == Outcome.REFUSE:
        await audit(conn, actor.id, action, target, "refused", decision.reason, inc.id)
        return Reply(f"🚫 Not doing that: {decision.reason}.", "error")
    if auto and await _tried_automatically(conn, inc.id, action):
        why = f"auto-remediation already tried {action} in #{inc.short_id}; people decide the next step"
        await audit(conn, actor.id, action, target, "refused", why, inc.id)
        return Reply(f"🚫 Not doing that again on my own: {why}.", "error")
    inflight = f"{target}:{action}"
    if (busy := await _in_flight(conn, inflight, inc)) is not None:
        return busy
    params = {"replicas": intent.replicas, "delta": intent.delta}
    state = "approved" if decision.outcome == Outcome.RUN else "pending_approval"
    res = await conn.execute(
        insert(t.actions).values(
            incident_id=inc.id,
            action=action,
            service=target,
            params=params,
            state=state,
            requested_by=actor.name,
            requested_at=utcnow(),
            auto=auto,
            inflight_key=inflight,
        )
    )
    action_id = inserted_id(res)
    why = f"auto-remediation; {decision.reason}" if auto else decision.reason
    await audit(conn, actor.id, action, target, state, why, inc.id)
    what = f"{action.replace('_', ' ')} {target}{_params_text(params)}"
    await lifecycle.add_event(
        conn, inc.id, "action_requested", actor.name, f"{what} requested ({why})"
    )
    if state == "approved":
        await lifecycle.enqueue_job(conn, "action", inc, {"action_id": action_id})
        return Reply(
            f"▶️ {_sentence(VERB.get(action, action))} {target}{_params_text(params)} (asked by {actor.mention}).",
            "action",
        )
    return Reply(
        f"🔐 {actor.mention} asks to {what}. {_sentence(decision.reason)}: an approver can "
        f'click Approve or reply "approve" within {_ago(cfg.policy.approval_timeout_s)}.',
        "approval",
        buttons=[
            Button(f"approve:{action_id}", "Approve", str(action_id), "primary"),
            Button(f"deny:{action_id}", "Deny", str(action_id), "danger"),
        ],
    )


async def _tried_automatically(conn: AsyncConnection, incident_id: str, action: str) -> bool:
    """Auto-remediation acts once per incident and action: a re-diagnosis or a re-opened
    incident must not turn it into a restart loop."""
    tried = await conn.scalar(
        select(t.actions.c.id)
        .where(
            t.actions.c.incident_id == incident_id,
            t.actions.c.action == action,
            t.actions.c.auto.is_(True),
        )
        .limit(1)
    )
    return tried is not None


async def _in_flight(conn: AsyncConnection, inflight: str, inc: Incident) -> Reply | None:
    """The answer when this action on this service is already in flight; None when it is free.

    A request still waiting for approval in an incident that has since resolved is withdrawn:
    nobody will approve it there, and it must not block the next incident's request.
    """
    busy = (
        await conn.execute(select(t.actions).where(t.actions.c.inflight_key == inflight))
    ).first()
    if busy is None:
        return None
    owner = inc if busy.incident_id == inc.id else await lifecycle.get(conn, busy.incident_id)
    if busy.state == "pending_approval" and not owner.is_open:
        await _withdraw(conn, busy, owner)
        return None
    age = (utcnow() - aware(busy.requested_at)).total_seconds()  # type: ignore[operator]
    what = f"{VERB.get(busy.action, busy.action)} {busy.service}"
    if busy.state == "pending_approval":
        what = f"waiting for approval to {busy.action.replace('_', ' ')} {busy.service}"
    where = "" if owner.id == inc.id else f" in #{owner.short_id}"
    return Reply(
        f"⏳ Already {what} (asked by @{busy.requested_by} {_ago(age)} ago{where}).", "action"
    )


async def _withdraw(conn: AsyncConnection, row: Any, owner: Incident) -> None:
    why = f"#{owner.short_id} was resolved before anyone approved"
    await _close(conn, row.id, "expired", why)
    await audit(conn, "opsbot", row.action, row.service, "expired", why, owner.id)


async def pending_for(conn: AsyncConnection, incident_id: str) -> int | None:
    """The newest action of this incident that waits for approval."""
    return await conn.scalar(
        select(t.actions.c.id)
        .where(t.actions.c.incident_id == incident_id, t.actions.c.state == "pending_approval")
        .order_by(t.actions.c.id.desc())
        .limit(1)
    )


async def decide(
    conn: AsyncConnection, cfg: Config, inc: Incident, actor: Actor, action_id: int, approve: bool
) -> Reply:
    row = (await conn.execute(select(t.actions).where(t.actions.c.id == action_id))).first()
    if row is None or row.incident_id != inc.id:
        return Reply("There is no such action waiting in this incident.", "error")
    if row.state != "pending_approval":
        return Reply(f"That {row.action} request is already {row.state.replace('_', ' ')}.", "info")
    age = (utcnow() - aware(row.requested_at)).total_seconds()  # type: ignore[operator]
    if age > cfg.policy.approval_timeout_s:
        await _close(
            conn, row.id, "expired", f"approval window of {cfg.policy.approval_timeout_s} s passed"
        )
        await audit(
            conn, actor.id, row.action, row.service, "expired", "approval came too late", inc.id
        )
        return Reply(
            f"⌛ The request to {row.action} {row.service} expired; ask again if still needed.",
            "info",
        )
    if approve:
        verdict = may_approve(cfg, actor, row.service, row.requested_by)
    else:
        verdict = may_deny(cfg, actor, row.requested_by)
    if verdict.outcome == Outcome.REFUSE:
        await audit(conn, actor.id, row.action, row.service, "refused", verdict.reason, inc.id)
        return Reply(f"🚫 {_sentence(verdict.reason)}.", "error")
    if approve and not inc.is_open:
        await _withdraw(conn, row, inc)
        return Reply(
            f"⌛ #{inc.short_id} was resolved before anyone approved: {row.action} {row.service} "
            "will not run. Ask again in a new incident if it is still needed.",
            "info",
        )
    if approve and (unlisted := await _refuse_unlisted(conn, cfg, inc, row)):
        return unlisted
    new_state = "approved" if approve else "denied"
    done = await conn.execute(
        update(t.actions)
        .where(t.actions.c.id == action_id, t.actions.c.state == "pending_approval")
        .values(
            state=new_state,
            approved_by=actor.name,
            decided_at=utcnow(),
            inflight_key=row.inflight_key if approve else None,
        )
    )
    if done.rowcount == 0:  # someone else decided in between
        return Reply("That request was just decided by someone else.", "info")
    await audit(conn, actor.id, row.action, row.service, new_state, f"by {actor.mention}", inc.id)
    await lifecycle.add_event(
        conn,
        inc.id,
        f"action_{new_state}",
        actor.name,
        f"{row.action} {row.service} {new_state} by {actor.name}",
    )
    if approve:
        await lifecycle.enqueue_job(conn, "action", inc, {"action_id": action_id})
        return Reply(
            f"✅ Approved by {actor.mention}: {VERB.get(row.action, row.action)} {row.service}…",
            "action",
        )
    return Reply(
        f"❌ Denied by {actor.mention}: {row.action} {row.service} will not run.", "action"
    )


async def _refuse_unlisted(
    conn: AsyncConnection, cfg: Config, inc: Incident, row: Any
) -> Reply | None:
    """Close a request whose action the configuration no longer allows; None if it still does."""
    listed = allow_listed(cfg, row.service, row.action)
    if listed.outcome != Outcome.REFUSE:
        return None
    why = f"{listed.reason}; the configuration changed since it was asked"
    await _close(conn, row.id, "refused", why)
    await audit(conn, "opsbot", row.action, row.service, "refused", why, inc.id)
    return Reply(f"🚫 Not running {row.action} {row.service}: {why}.", "error")


async def _close(
    conn: AsyncConnection, action_id: int, state: str, outcome: str, *, only_from: str | None = None
) -> bool:
    """Finish an action; with `only_from`, only if it is still in that state (False if not)."""
    query = update(t.actions).where(t.actions.c.id == action_id)
    if only_from is not None:
        query = query.where(t.actions.c.state == only_from)
    done = await conn.execute(
        query.values(state=state, outcome=outcome, finished_at=utcnow(), inflight_key=None)
    )
    return done.rowcount == 1


Check = Callable[[], Awaitable[tuple[bool, str]]]


def _health_check(url: str) -> Check:
    source = HttpHealthSource(url)

    async def check() -> tuple[bool, str]:
        r = await source.check()
        return r.healthy, f"HTTP {r.status}" if r.status else r.body

    return check


def _query_check(prometheus_url: str, query: str) -> Check:
    """The alert's own condition: cleared when its query returns no series."""
    source = PrometheusSource(prometheus_url, {})

    async def check() -> tuple[bool, str]:
        try:
            rows = await source.instant(query)
        except IntegrationError as exc:
            return False, f"alert query unavailable: {exc}"
        if not rows:
            return True, ""
        return False, f"the alert's query still matches {len(rows)} series"

    return check


def verification_checks(svc: ServiceConfig, inc: Incident) -> list[Check]:
    """Health endpoint, and for Prometheus-backed services the alert's own query."""
    checks = [_health_check(svc.health_url)] if svc.health_url else []
    prometheus = svc.metrics.prometheus if svc.metrics else None
    query = svc.verify_query or (
        expr_from_generator_url(inc.generator_url or "") if prometheus else None
    )
    if prometheus and query:
        checks.append(_query_check(prometheus, query))
    return checks


async def verify(checks: list[Check], timeout_s: float) -> tuple[bool | None, str]:
    """Poll every check with backoff until all pass or the deadline passes."""
    if not checks:
        return None, "no health check configured"
    started = time.monotonic()

    async def all_checks() -> tuple[bool, str]:
        results = await asyncio.gather(*(c() for c in checks))
        failing = [detail for ok, detail in results if not ok]
        return not failing, "; ".join(failing)

    retrying = AsyncRetrying(
        retry=retry_if_result(lambda r: not r[0]),
        wait=wait_exponential(multiplier=0.5, max=8),
        stop=stop_after_delay(timeout_s),
        retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
    )
    ok: bool
    detail: str
    ok, detail = await retrying(all_checks)
    took = time.monotonic() - started
    if ok:
        return True, f"verified healthy after {took:.0f} s"
    return False, f"still failing after {took:.0f} s: {detail[:200]}"


async def run_job(
    store: Store, cfg: Config, item: Item, scrub: Callable[[str], str], owner: str
) -> None:
    """Outbox handler for `action`: run an approved action exactly once, then verify it.

    What the action printed is `scrub`bed of secrets before it is posted or stored; the
    running row names its `owner` replica."""
    action_id = item.payload["action_id"]
    async with store.write() as conn:
        claimed = await conn.execute(
            update(t.actions)
            .where(t.actions.c.id == action_id, t.actions.c.state == "approved")
            .values(state="running", started_at=utcnow(), owner=owner)
        )
        row = (await conn.execute(select(t.actions).where(t.actions.c.id == action_id))).one()
        inc = await lifecycle.get(conn, row.incident_id)
        refused = await _refuse_unlisted(conn, cfg, inc, row) if claimed.rowcount else None
        if refused is not None:
            await lifecycle.enqueue_reply(conn, cfg, inc, refused)
    if claimed.rowcount == 0:
        log.info("action.already_handled", action=action_id, state=row.state)
        return
    if refused is not None:
        return
    svc = cfg.services[row.service]
    params = ActionParams(
        action=row.action,
        service=row.service,
        replicas=row.params.get("replicas"),
        delta=row.params.get("delta"),
        requested_by=row.requested_by,
        incident_id=inc.id,
    )
    try:
        result = await executor_for(svc.actions[row.action]).run(params)
    except (IntegrationError, PlaceholderError) as exc:
        result = ActionResult(ok=False, summary=f"{row.action} {row.service}: {exc}")
    except Exception as exc:  # an executor bug must not leave the action `running` forever
        log.exception("action.executor_crashed", action=action_id)
        result = ActionResult(
            ok=False, summary=f"{row.action} {row.service}: executor error: {exc}"
        )
    result = replace(result, summary=scrub(result.summary), output=scrub(result.output))
    healthy, verdict = (
        await verify(verification_checks(svc, inc), svc.verify_timeout_s)
        if result.ok
        else (False, "")
    )
    ok = result.ok and healthy is not False
    lines = [("✅ " if ok else "❌ ") + result.summary]
    if result.ok:
        lines.append(("🩺 " if healthy else "⚠️ ") + _sentence(verdict))
    if not result.ok and result.output:
        lines.append(f"```{result.output[-800:]}```")
    outcome = " — ".join([result.summary, verdict] if verdict else [result.summary])
    async with store.write() as conn:
        await _close(conn, action_id, "succeeded" if ok else "failed", outcome)
        await audit(
            conn,
            "opsbot",
            row.action,
            row.service,
            "succeeded" if ok else "failed",
            outcome,
            inc.id,
        )
        await lifecycle.add_event(
            conn, inc.id, "action_succeeded" if ok else "action_failed", "opsbot", outcome
        )
        await lifecycle.enqueue_reply(conn, cfg, inc, Reply("\n".join(lines), "action"))
        inc = await lifecycle.get(conn, inc.id)
        if ok and healthy and inc.is_open:
            await lifecycle.resolve(
                conn, cfg, inc, "opsbot", f"{DONE.get(row.action, row.action)} and verified healthy"
            )


DeadOwner = Callable[[Any], ColumnElement[bool]]


def orphaned(dead_owner: DeadOwner) -> Select[Any]:
    """Actions left running by a replica that is gone."""
    return select(t.actions).where(t.actions.c.state == "running", dead_owner(t.actions.c.owner))


def overdue_approvals(cfg: Config) -> Select[Any]:
    """Requests nobody approved within `policy.approval_timeout_s`."""
    cutoff = utcnow() - timedelta(seconds=cfg.policy.approval_timeout_s)
    return select(t.actions).where(
        t.actions.c.state == "pending_approval", t.actions.c.requested_at < cutoff
    )


async def recover(conn: AsyncConnection, cfg: Config, dead_owner: DeadOwner) -> int:
    """Actions left running by a replica that died have an unknown outcome: say so once, never
    re-run them. Actions of live replicas are theirs to finish."""
    rows = (await conn.execute(orphaned(dead_owner))).all()
    told = 0
    for row in rows:
        why = "the bot stopped while it was running; check the service before trying again"
        if not await _close(
            conn, row.id, "unknown", f"outcome unknown: {why}", only_from="running"
        ):
            continue  # another replica's recovery got there first
        told += 1
        await audit(conn, "opsbot", row.action, row.service, "unknown", why, row.incident_id)
        inc = await lifecycle.get(conn, row.incident_id)
        await lifecycle.add_event(
            conn, inc.id, "action_unknown", "opsbot", f"{row.action} {row.service}: outcome unknown"
        )
        await lifecycle.enqueue_reply(
            conn,
            cfg,
            inc,
            Reply(f"⚠️ {row.action} {row.service}: outcome unknown — {why}.", "action"),
        )
    return told


async def expire_approvals(conn: AsyncConnection, cfg: Config) -> int:
    rows = (await conn.execute(overdue_approvals(cfg))).all()
    expired = 0
    for row in rows:
        # another replica's sweep, or a late approval, may have got there first
        if not await _close(
            conn, row.id, "expired", "nobody approved in time", only_from="pending_approval"
        ):
            continue
        expired += 1
        await audit(
            conn,
            "opsbot",
            row.action,
            row.service,
            "expired",
            "approval timed out",
            row.incident_id,
        )
        inc = await lifecycle.get(conn, row.incident_id)
        await lifecycle.enqueue_reply(
            conn,
            cfg,
            inc,
            Reply(
                f"⌛ The request to {row.action} {row.service} expired without approval.", "action"
            ),
        )
    return expired
