"""Diagnosis jobs: build the incident's context, run the pipeline, store and post the result.

Also the follow-up questions asked in a thread, and auto-remediation after a diagnosis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from agent.followup import answer_question
from agent.pipeline import DiagnosisPipeline
from agent.types import ActionKind, Diagnosis, IncidentContext, Intent, IntentKind
from bot.app import metrics
from bot.app.config import Config
from bot.app.secrets import redact_patterns
from bot.app.wiring import sources_for
from bot.chat.messages import Reply
from bot.chat.render import SOURCE_MARK, diagnosis_text
from bot.incidents import actions, lifecycle
from bot.incidents.memory import StorePastIncidents
from bot.incidents.models import Incident, utcnow
from bot.incidents.policy import Actor, Outcome, auto_remediation
from bot.queue.outbox import Item
from bot.store import Store
from bot.store import schema as t
from integrations.alerts import Alert, AlertStatus, Severity

log = structlog.get_logger(__name__)
AUTO_ACTOR = Actor("opsbot", "opsbot", frozenset({"responder"}))


async def context_for(conn: AsyncConnection, cfg: Config, inc: Incident) -> IncidentContext:
    rows = (
        await conn.execute(
            select(t.alerts).where(t.alerts.c.incident_id == inc.id).order_by(t.alerts.c.id)
        )
    ).all()
    alerts = [
        Alert(
            source=inc.source,
            group_key=inc.group_key,
            fingerprint=r.fingerprint,
            status=AlertStatus(r.status),
            title=r.title,
            severity=Severity(r.severity),
            starts_at=r.starts_at if isinstance(r.starts_at, datetime) else inc.created_at,
            service=inc.service,
            labels=dict(r.labels),
            annotations=dict(r.annotations),
            ends_at=r.ends_at,
            logs=tuple(r.logs or ()),
        )
        for r in rows
    ]
    svc = cfg.services.get(inc.service or "")
    return IncidentContext(
        title=inc.title,
        alerts=alerts,
        service=inc.service,
        allowed_actions=[ActionKind(a) for a in svc.actions] if svc else [],
        runbook=svc.runbook if svc else None,
        labels=inc.labels,
        annotations=inc.annotations,
    )


Answer = Callable[[dict[str, Any], Incident, Reply], Awaitable[None]]


class Diagnoser:
    """Outbox handlers for `diagnose` and `question` jobs."""

    def __init__(
        self, cfg: Config, store: Store, pipeline: DiagnosisPipeline, answer: Answer
    ) -> None:
        self.cfg, self.store, self.pipeline = cfg, store, pipeline
        self.answer = answer  # replies to a question where it was asked
        self.past = StorePastIncidents(store)
        self.redact_patterns = redact_patterns(cfg)

    async def diagnose(self, item: Item) -> None:
        async with self.store.read() as conn:
            done = await conn.scalar(
                select(t.diagnoses.c.id).where(t.diagnoses.c.job_id == item.id)
            )
            inc = await lifecycle.get(conn, item.payload["incident_id"])
            ctx = await context_for(conn, self.cfg, inc)
        if done is not None:
            return  # this job already stored its diagnosis before a crash
        result = await self.pipeline.run(ctx, sources_for(self.cfg, inc.service, self.past))
        d = result.diagnosis
        metrics.DIAGNOSES.labels(source=d.source.value).inc()
        note = ""
        if d.source.value not in ("live",) and result.notes:
            note = "\n_" + "; ".join(n for n in result.notes[:3]) + "_"
        async with self.store.write() as conn:
            await conn.execute(
                insert(t.diagnoses).values(
                    incident_id=inc.id,
                    at=utcnow(),
                    source=d.source.value,
                    category=d.category.value,
                    payload=d.model_dump(mode="json"),
                    job_id=item.id,
                )
            )
            mark = SOURCE_MARK.get(d.source.value, "")
            await lifecycle.add_event(
                conn, inc.id, "diagnosis", f"agent ({d.source.value})", f"{mark} {d.summary}"
            )
            await lifecycle.enqueue_reply(
                conn, self.cfg, inc, Reply(diagnosis_text(d) + note, "diagnosis", diagnosis=d)
            )
            await self._auto_remediate(conn, inc, d)

    async def _auto_remediate(self, conn: AsyncConnection, inc: Incident, d: Diagnosis) -> None:
        decision = auto_remediation(self.cfg, inc.service, d)
        if decision.outcome != Outcome.RUN or not inc.is_open:
            return
        intent = Intent(kind=IntentKind.ACTION, action=d.action, text="auto-remediation")
        reply = await actions.request(conn, self.cfg, inc, AUTO_ACTOR, intent, auto=True)
        # one message says why and what happened to the request (queued, gated, refused)
        reply.text = f"🤖 Auto-remediation: {decision.reason}.\n{reply.text}"
        await lifecycle.enqueue_reply(conn, self.cfg, inc, reply)

    async def question(self, item: Item) -> None:
        p = item.payload
        async with self.store.read() as conn:
            inc = await lifecycle.get(conn, p["incident_id"])
            ctx = await context_for(conn, self.cfg, inc)
            history = (
                await conn.scalars(
                    select(t.messages.c.text)
                    .where(t.messages.c.incident_id == inc.id)
                    .order_by(t.messages.c.id.desc())
                    .limit(6)
                )
            ).all()
        answer = await answer_question(
            p["question"],
            ctx,
            sources_for(self.cfg, inc.service, self.past),
            self.pipeline.chain,
            list(reversed(history)),
            redact_patterns=self.redact_patterns,
        )
        mark = SOURCE_MARK.get(answer.source.value, "")
        lines = [f"{mark} {answer.text}"]
        lines += [f"  • [{e.tool}] {e.quote}" for e in answer.evidence[:5]]
        lines.append(f"_({answer.source.value})_")
        await self.answer(p["asked"], inc, Reply("\n".join(lines), "answer"))
