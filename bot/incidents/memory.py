"""What the bot remembers across incidents: cached diagnoses and what fixed each signature."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Connection, delete, insert, select

from agent.types import Diagnosis, PastFix
from bot.incidents.models import aware, utcnow
from bot.store import Store, insert_or_ignore
from bot.store import schema as t


class StoreDiagnosisCache:
    """The last good LLM diagnosis per alert signature (the chain's `cache` layer)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, signature: str, max_age_s: int) -> tuple[Diagnosis, int] | None:
        async with self.store.read() as conn:
            row = (
                await conn.execute(
                    select(t.diagnosis_cache).where(t.diagnosis_cache.c.signature == signature)
                )
            ).first()
        if row is None:
            return None
        age = int((utcnow() - aware(row.at)).total_seconds())  # type: ignore[operator]
        if age > max_age_s:
            return None
        return Diagnosis.model_validate(row.payload), age

    async def put(self, signature: str, diagnosis: Diagnosis) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                delete(t.diagnosis_cache).where(t.diagnosis_cache.c.signature == signature)
            )
            await conn.execute(
                insert(t.diagnosis_cache).values(
                    signature=signature, at=utcnow(), payload=diagnosis.model_dump(mode="json")
                )
            )


class StorePastIncidents:
    """`past_incidents` for the agent: what resolved earlier incidents with this signature."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def fixes_for(self, signature: str) -> list[PastFix]:
        async with self.store.read() as conn:
            actions = (
                await conn.scalars(select(t.fixes.c.action).where(t.fixes.c.signature == signature))
            ).all()
            resolved = await conn.scalar(
                select(t.incidents.c.id)
                .where(t.incidents.c.signature == signature, t.incidents.c.status == "resolved")
                .limit(1)
            )
        if not actions or resolved is None:
            return []
        total = len(actions)
        return [PastFix(a, n, total) for a, n in Counter(actions).most_common()]


def remember_fixes(conn: Connection, signatures: dict[str, str]) -> None:
    """Incidents (id → signature) just resolved: the action that last succeeded on each is
    what fixed it, suggested next time (remembered once per incident)."""
    a = t.actions
    rows = conn.execute(
        select(a.c.incident_id, a.c.action)
        .where(a.c.incident_id.in_(signatures), a.c.state == "succeeded")
        .order_by(a.c.id)
    ).all()
    fixed_by = {r.incident_id: r.action for r in rows}  # the last one wins
    if fixed_by:
        conn.execute(
            insert_or_ignore(conn.dialect.name, t.fixes),
            [
                {"signature": signatures[iid], "action": action, "incident_id": iid, "at": utcnow()}
                for iid, action in fixed_by.items()
            ],
        )
