"""Tickets from chat: one Jira issue per incident (unless asked for another), filed from the queue.

The assignee is looked up in the people directory, then by Jira user search; several matches
ask which one; none files it unassigned and says so. Jira down → retried with one notice.
"""

from __future__ import annotations

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from agent.types import Intent
from bot.app.config import Config
from bot.chat.adapters.base import ChatAdapter, InboundMessage, ThreadRef
from bot.chat.escape import jira
from bot.chat.messages import Button, Reply
from bot.incidents import lifecycle
from bot.incidents.models import Incident, iso, utcnow
from bot.incidents.policy import Actor
from bot.queue.outbox import Item
from bot.store import Store, inserted_id
from bot.store import schema as t
from integrations.errors import IntegrationError, PermanentError, RateLimited, TransientError
from integrations.tickets import JiraTickets, JiraUser

log = structlog.get_logger(__name__)
PRIORITY = {"critical": "Highest", "warning": "Medium", "info": "Low"}
ANOTHER = ("another", "new ticket", "second", "one more", "separate")
Assignee = JiraUser | list[JiraUser] | None
"""A user, nobody, or several matches to choose from."""


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
            update(t.tickets).where(t.tickets.c.id == choosing.id).values(state="pending")
        )
        # The name asked for is searched again to know the chosen user's display name.
        await lifecycle.enqueue_job(
            conn,
            "ticket",
            inc,
            {
                "ticket_id": choosing.id,
                "assignee": choosing.assignee,
                "assignee_id": intent.assignee,
            },
        )
        return Reply("🎫 Filing it…", "ticket")
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
        if r.state == "choosing":
            return Reply("🎫 A ticket is waiting for someone to pick its assignee above.", "ticket")
        return Reply("🎫 A ticket for this incident is already being filed.", "ticket")
    number = len(rows) + 1
    res = await conn.execute(
        insert(t.tickets).values(
            incident_id=inc.id,
            state="pending",
            assignee=intent.assignee,
            priority=intent.priority,
            requested_by=actor.name,
            request_key=f"{inc.id}-{number}",
            created_at=utcnow(),
        )
    )
    await lifecycle.enqueue_job(
        conn,
        "ticket",
        inc,
        {
            "ticket_id": inserted_id(res),
            "assignee": intent.assignee,
        },
    )
    await lifecycle.add_event(
        conn, inc.id, "ticket_requested", actor.name, f"Ticket requested by {actor.name}"
    )
    who = f" for {intent.assignee}" if intent.assignee else ""
    return Reply(f"🎫 Filing a Jira ticket{who}…", "ticket")


def describe(inc: Incident, detail: dict, thread_url: str | None) -> str:
    """The issue body (Jira wiki markup): diagnosis, evidence, timeline, link back to chat.
    Every piece of data is escaped: alert and model text cannot add markup, links or macros."""
    lines = [f"h2. Incident #{inc.short_id}: {jira(inc.title)}", ""]
    lines.append(
        f"*Service:* {jira(inc.service or '-')}  *Severity:* {jira(inc.severity)}  "
        f"*Status:* {inc.status.value}"
    )
    lines.append(f"*Started:* {iso(inc.created_at)}")
    if thread_url:
        lines.append(f"*Chat thread:* [{thread_url}]")
    if detail["diagnoses"]:
        d = detail["diagnoses"][-1]
        lines += [
            "",
            f"h3. Diagnosis ({d['source']}, confidence {d['confidence']:.0%})",
            jira(d["summary"]),
            "",
            f"*Root cause:* {jira(d['root_cause'])}",
        ]
        if d.get("evidence"):
            lines += ["", "*Evidence:*"] + [
                f"* {{{{{jira(e['tool'])}}}}} {jira(e['quote'])}" for e in d["evidence"][:6]
            ]
        if d.get("checks"):
            lines += ["", "*Check first:*"] + [f"# {jira(c)}" for c in d["checks"][:5]]
        if d.get("mitigation"):
            lines += ["", f"*Mitigation:* {jira(d['mitigation'])}"]
    lines += ["", "h3. Timeline"] + [
        f"* {e['at']} — {jira(e['actor'])}: {jira(e['text'])}" for e in detail["timeline"][-20:]
    ]
    return "\n".join(lines)


class TicketDesk:
    """Outbox handlers for `ticket` and `ticket_comment` jobs."""

    def __init__(
        self, cfg: Config, store: Store, adapters: dict[str, ChatAdapter], jira: JiraTickets | None
    ) -> None:
        self.cfg, self.store, self.adapters, self.jira = cfg, store, adapters, jira

    async def _permalink(self, detail: dict) -> str | None:
        """A link back to the chat thread; a chat API failing here only costs the link."""
        for th in detail["threads"]:
            adapter = self.adapters.get(th["platform"])
            if adapter is None or th["thread_id"] is None:
                continue
            try:
                link = await adapter.permalink(
                    ThreadRef(th["platform"], th["channel"], th["thread_id"])
                )
            except IntegrationError as exc:
                log.warning("ticket.permalink_failed", platform=th["platform"], error=str(exc))
                continue
            if link:
                return link
        if self.cfg.http.public_url:
            return f"{self.cfg.http.public_url.rstrip('/')}/#/incidents/{detail['id']}"
        return None

    async def _assignee(self, name: str | None, chosen: str | None) -> Assignee:
        """Who `name` is in Jira: the directory's id, else the user search's one match.

        `chosen` is the id picked from an earlier list of several matches.
        """
        assert self.jira is not None
        if not name:
            return None
        person = self.cfg.person(name)
        if person is not None and person.jira:
            return JiraUser(person.jira, person.name, person.email)
        found = await self.jira.find_users(person.email or person.name if person else name)
        if chosen:
            return next((u for u in found if u.id == chosen), JiraUser(chosen, chosen))
        if len(found) == 1:
            return found[0]
        return found or None

    async def _ask_which(
        self, inc: Incident, ticket_id: int, name: str, found: list[JiraUser]
    ) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                update(t.tickets).where(t.tickets.c.id == ticket_id).values(state="choosing")
            )
            buttons = [Button(f"assign:{u.id}", u.display_name, inc.id) for u in found[:5]]
            await lifecycle.enqueue_reply(
                conn,
                self.cfg,
                inc,
                Reply(
                    f"🎫 Several Jira users match {name!r}: which one?", "ticket", buttons=buttons
                ),
            )

    async def file(self, item: Item) -> None:
        p = item.payload
        async with self.store.read() as conn:
            row = (
                await conn.execute(select(t.tickets).where(t.tickets.c.id == p["ticket_id"]))
            ).one()
            inc = await lifecycle.get(conn, row.incident_id)
            detail = await lifecycle.detail(conn, inc)
        if row.state != "pending" or self.jira is None:
            return
        name = p.get("assignee")
        thread_url = await self._permalink(detail)
        try:
            user = await self._assignee(name, p.get("assignee_id"))
            if isinstance(user, list):  # several matches: only a name search finds several
                await self._ask_which(inc, row.id, name or "", user)
                return
            ref = await self.jira.create_issue(
                f"[#{inc.short_id}] {inc.title}",
                describe(inc, detail, thread_url),
                labels=["incident", *([inc.service] if inc.service else [])],
                priority=row.priority or PRIORITY.get(inc.severity),
                assignee=user,
                idempotency_key=row.request_key,
            )
        except TransientError as exc:
            attempts = item.attempts + 1
            if isinstance(exc, RateLimited) or attempts < self.cfg.outbox.max_attempts:
                await self._notify_unreachable(inc, row.id, str(exc))
                raise
            await self._fail(
                inc,
                row.id,
                f"Jira stayed unreachable after {attempts} attempts ({exc}); "
                "ask again when it is back.",
            )
            return
        except PermanentError as exc:
            await self._fail(inc, row.id, str(exc))
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
                    error=None,
                )
            )
            whom = f", assigned to {user.display_name}" if user else ""
            extra = (
                f" (no Jira user matches {name!r}, so it is unassigned)"
                if name and not user
                else ""
            )
            await lifecycle.add_event(conn, inc.id, "ticket", "opsbot", f"Created {ref.key}{whom}")
            await lifecycle.enqueue_reply(
                conn,
                self.cfg,
                inc,
                Reply(
                    f"🎫 Created {ref.key}{whom}{extra}: {ref.url}",
                    "ticket",
                    link=(ref.key, ref.url),
                ),
            )

    async def _fail(self, inc: Incident, ticket_id: int, reason: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                update(t.tickets)
                .where(t.tickets.c.id == ticket_id)
                .values(state="failed", error=reason)
            )
            await lifecycle.enqueue_reply(
                conn, self.cfg, inc, Reply(f"❌ Could not file the ticket: {reason}", "error")
            )

    async def _notify_unreachable(self, inc: Incident, ticket_id: int, error: str) -> None:
        """Say it once per ticket; the queue keeps retrying."""
        async with self.store.write() as conn:
            done = await conn.execute(
                update(t.tickets)
                .where(t.tickets.c.id == ticket_id, t.tickets.c.error.is_(None))
                .values(error=error[:500])
            )
            if done.rowcount:
                await lifecycle.enqueue_reply(
                    conn,
                    self.cfg,
                    inc,
                    Reply(
                        "⏳ Jira is unreachable, will retry; the key follows when it is created.",
                        "ticket",
                    ),
                )

    async def comment(self, item: Item) -> None:
        """On resolution: a comment, or an attachment (each its own job, so each retried alone)."""
        if self.jira is None:
            return
        p = item.payload
        if p.get("comment"):
            await self.jira.add_comment(p["key"], p["comment"])
        if p.get("attachment"):
            await self.jira.attach(p["key"], p["filename"], p["attachment"].encode())


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
