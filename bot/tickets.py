"""Tickets from chat: one Jira issue per incident (unless asked for another), filed from the queue.

The assignee is looked up in the people directory, then by Jira user search; several matches
ask which one; none files it unassigned and says so. Jira down → retried with one notice.
"""

from __future__ import annotations

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agent.types import Intent
from bot import incidents
from bot.adapters.base import Button, ChatAdapter, InboundMessage, Reply, ThreadRef
from bot.config import Config
from bot.models import Incident, iso, utcnow
from bot.outbox import Item
from bot.policy import Actor
from bot.store import Store
from bot.store import schema as t
from integrations.errors import PermanentError, TransientError
from integrations.tickets import JiraTickets, JiraUser

log = structlog.get_logger(__name__)
PRIORITY = {"critical": "Highest", "high": "High", "warning": "Medium", "info": "Low"}
ANOTHER = ("another", "new ticket", "second", "one more", "separate")


def jira_client(cfg: Config) -> JiraTickets | None:
    j = cfg.jira
    if not j.enabled:
        return None
    return JiraTickets(j.url, j.username, j.api_token, j.project, j.issue_type, j.deployment)


async def request(
    conn: AsyncConnection,
    cfg: Config,
    inc: Incident,
    actor: Actor,
    intent: Intent,
    msg: InboundMessage,
) -> Reply | None:
    """Record the ask (idempotent per incident) and queue the filing."""
    if not cfg.jira.enabled:
        return Reply(
            "Jira is not configured: set `jira.url`, `jira.username` and `jira.api_token`.", "error"
        )
    rows = (
        await conn.execute(
            select(t.tickets).where(t.tickets.c.incident_id == inc.id).order_by(t.tickets.c.id)
        )
    ).all()
    choosing = next((r for r in rows if r.state == "choosing"), None)
    if choosing is not None and intent.source == "button" and intent.assignee:
        await conn.execute(
            update(t.tickets)
            .where(t.tickets.c.id == choosing.id)
            .values(state="pending", assignee=intent.assignee)
        )
        await incidents.enqueue_job(
            conn, "ticket", inc, {"ticket_id": choosing.id, "assignee_id": intent.assignee}
        )
        return Reply(f"🎫 Filing it for {intent.assignee}…", "ticket")
    wants_another = any(w in intent.text.lower() for w in ANOTHER)
    live = [r for r in rows if r.state in ("pending", "created", "choosing")]
    if live and not wants_another:
        r = live[-1]
        if r.state == "created":
            return Reply(
                f'🎫 This incident already has {r.key}: {r.url} (say "another ticket" for a new one).',
                "ticket",
                link=(r.key, r.url),
            )
        return Reply("🎫 A ticket for this incident is already being filed.", "ticket")
    number = len(rows) + 1
    res = await conn.execute(
        insert(t.tickets).values(
            incident_id=inc.id,
            state="pending",
            assignee=intent.assignee,
            requested_by=actor.name,
            request_key=f"{inc.id}-{number}",
            created_at=utcnow(),
        )
    )
    await incidents.enqueue_job(
        conn,
        "ticket",
        inc,
        {
            "ticket_id": res.inserted_primary_key[0],
            "priority": intent.priority,
            "assignee": intent.assignee,
        },
    )
    await incidents.add_event(
        conn, inc.id, "ticket_requested", actor.name, f"Ticket requested by {actor.name}"
    )
    who = f" for {intent.assignee}" if intent.assignee else ""
    return Reply(f"🎫 Filing a Jira ticket{who}…", "ticket")


def describe(inc: Incident, detail: dict, thread_url: str | None) -> str:
    """The issue body (Jira wiki markup): diagnosis, evidence, timeline, link back to chat."""
    lines = [f"h2. Incident #{inc.short_id}: {inc.title}", ""]
    lines.append(
        f"*Service:* {inc.service or '-'}  *Severity:* {inc.severity}  *Status:* {inc.status.value}"
    )
    lines.append(f"*Started:* {iso(inc.created_at)}")
    if thread_url:
        lines.append(f"*Chat thread:* [{thread_url}]")
    if detail["diagnoses"]:
        d = detail["diagnoses"][-1]
        lines += [
            "",
            f"h3. Diagnosis ({d['source']}, confidence {d['confidence']:.0%})",
            d["summary"],
            "",
            f"*Root cause:* {d['root_cause']}",
        ]
        if d.get("evidence"):
            lines += ["", "*Evidence:*"] + [
                f"* [{e['tool']}] {{noformat}}{e['quote']}{{noformat}}" for e in d["evidence"][:6]
            ]
        if d.get("checks"):
            lines += ["", "*Check first:*"] + [f"# {c}" for c in d["checks"][:5]]
        if d.get("mitigation"):
            lines += ["", f"*Mitigation:* {d['mitigation']}"]
    lines += ["", "h3. Timeline"] + [
        f"* {e['at']} — {e['actor']}: {e['text']}" for e in detail["timeline"][-20:]
    ]
    return "\n".join(lines)


class TicketDesk:
    """Outbox handlers for `ticket` and `ticket_comment` jobs."""

    def __init__(
        self, cfg: Config, store: Store, adapters: dict[str, ChatAdapter], jira: JiraTickets | None
    ) -> None:
        self.cfg, self.store, self.adapters, self.jira = cfg, store, adapters, jira

    async def _permalink(self, detail: dict) -> str | None:
        for th in detail["threads"]:
            adapter = self.adapters.get(th["platform"])
            if adapter is not None and th["platform"] != "console":
                link = await adapter.permalink(
                    ThreadRef(th["platform"], th["channel"], th["thread_id"])
                )
                if link:
                    return link
        if self.cfg.http.public_url:
            return f"{self.cfg.http.public_url.rstrip('/')}/#/incidents/{detail['id']}"
        return None

    async def _assignee(
        self, conn: AsyncConnection, inc: Incident, ticket_id: int, name: str | None
    ) -> tuple[JiraUser | None, str | None]:
        """(user, note). Returns (None, "choosing") when the thread was asked to pick one."""
        assert self.jira is not None
        if not name:
            return None, None
        person = self.cfg.person(name)
        if person is not None and person.jira:
            return JiraUser(person.jira, person.name, person.email), None
        query = person.email or person.name if person else name
        found = await self.jira.find_users(query)
        if len(found) == 1:
            return found[0], None
        if not found:
            return None, f"no Jira user matches {name!r}, so it is unassigned"
        await conn.execute(
            update(t.tickets).where(t.tickets.c.id == ticket_id).values(state="choosing")
        )
        buttons = [Button(f"assign:{u.id}", u.display_name, u.id) for u in found[:5]]
        await incidents.enqueue_reply(
            conn,
            self.cfg,
            inc,
            Reply(f"🎫 Several Jira users match {name!r}: which one?", "ticket", buttons=buttons),
        )
        return None, "choosing"

    async def file(self, item: Item) -> None:
        p = item.payload
        async with self.store.read() as conn:
            row = (
                await conn.execute(select(t.tickets).where(t.tickets.c.id == p["ticket_id"]))
            ).first()
            inc = await incidents.get(conn, row.incident_id)
            detail = await incidents.detail(conn, inc)
        if row.state not in ("pending",) or self.jira is None:
            return
        try:
            async with self.store.write() as conn:
                if p.get("assignee_id"):
                    user, note = JiraUser(p["assignee_id"], p["assignee_id"]), None
                else:
                    user, note = await self._assignee(conn, inc, row.id, p.get("assignee"))
            if note == "choosing":
                return
            ref = await self.jira.create_issue(
                f"[#{inc.short_id}] {inc.title}",
                describe(inc, detail, await self._permalink(detail)),
                labels=["incident", *([inc.service] if inc.service else [])],
                priority=p.get("priority") or PRIORITY.get(inc.severity),
                assignee=user,
                idempotency_key=row.request_key,
            )
        except TransientError as exc:
            await self._notify_unreachable(inc, row, str(exc))
            raise
        except PermanentError as exc:
            async with self.store.write() as conn:
                await conn.execute(
                    update(t.tickets)
                    .where(t.tickets.c.id == row.id)
                    .values(state="failed", error=str(exc))
                )
                await incidents.enqueue_reply(
                    conn, self.cfg, inc, Reply(f"❌ Could not file the ticket: {exc}", "error")
                )
            return
        async with self.store.write() as conn:
            await conn.execute(
                update(t.tickets)
                .where(t.tickets.c.id == row.id)
                .values(
                    state="created",
                    key=ref.key,
                    url=ref.url,
                    assignee=user.display_name if user else None,
                )
            )
            whom = f", assigned to {user.display_name}" if user else ""
            extra = f" ({note})" if note else ""
            await incidents.add_event(conn, inc.id, "ticket", "opsbot", f"Created {ref.key}{whom}")
            await incidents.enqueue_reply(
                conn,
                self.cfg,
                inc,
                Reply(
                    f"🎫 Created {ref.key}{whom}{extra}: {ref.url}",
                    "ticket",
                    link=(ref.key, ref.url),
                ),
            )

    async def _notify_unreachable(self, inc: Incident, row, error: str) -> None:  # type: ignore[no-untyped-def]
        """Say it once per ticket; the queue keeps retrying."""
        async with self.store.write() as conn:
            done = await conn.execute(
                update(t.tickets)
                .where(t.tickets.c.id == row.id, t.tickets.c.error.is_(None))
                .values(error=error[:500])
            )
            if done.rowcount:
                await incidents.enqueue_reply(
                    conn,
                    self.cfg,
                    inc,
                    Reply(
                        "⏳ Jira is unreachable, will retry; the key follows when it is created.",
                        "ticket",
                    ),
                )

    async def comment(self, item: Item) -> None:
        """On resolution: comment with the resolution and attach the postmortem."""
        if self.jira is None:
            return
        p = item.payload
        await self.jira.add_comment(p["key"], p["comment"])
        if p.get("postmortem"):
            await self.jira.attach(p["key"], p["filename"], p["postmortem"].encode())


async def created_keys(conn: AsyncConnection, incident_id: str) -> list[str]:
    return list(
        (
            await conn.scalars(
                select(t.tickets.c.key).where(
                    t.tickets.c.incident_id == incident_id, t.tickets.c.state == "created"
                )
            )
        ).all()
    )
