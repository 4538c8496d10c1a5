"""What the bot does with an operator's message: understand it, then answer, ask or act.

Buttons map straight to intents; text goes through the agent's intent understanding (LLM
with the grammar as fallback). Nothing here knows which chat platform a message came from.
"""

from __future__ import annotations

import re

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from agent.intents import parse, understand
from agent.llm.chain import ProviderChain
from agent.types import ActionKind, Intent, IntentKind
from bot.app import stats
from bot.app.chaos import ChaosSwitch
from bot.app.config import Config
from bot.chat.adapters.base import InboundMessage, Reply
from bot.chat.render import status_line
from bot.chat.router import Router, message_to_json
from bot.errors import NotFound
from bot.incidents import actions, escalation, lifecycle, oncall, tickets
from bot.incidents.models import Incident, Status, utcnow
from bot.incidents.policy import Actor, actor_for
from bot.store import Store

log = structlog.get_logger(__name__)

HELP = """Reply in an incident's thread:
• `ack` / `on it` — acknowledge   • `resolve` / `fixed` — resolve
• `restart it` · `scale it to 6` · `add 2 replicas` · `roll it back` — actions (approval by policy)
• `approve` / `deny` — decide a pending action
• `diagnose again` — fresh diagnosis   • any question, e.g. `what changed in the last hour?`
• `file a Jira for ravi` · `open a ticket, priority high`
• `snooze 30m` · `status` · `who is on call` · `stats` · `list` · `chaos on|off` · `help`"""

UNKNOWN = (
    "I didn't understand that as a command. Try `restart it`, `ack`, `status`, "
    "`file a Jira for ravi`, or ask a question ending with `?`. Type `help` for all."
)

# A decision by text names itself; a bare "yes"/"no" decides only as the answer to a prompt.
_EXPLICIT = re.compile(r"\b(approved?|deny|denied)\b", re.IGNORECASE)

_BUTTON_INTENTS = {
    "ack": IntentKind.ACKNOWLEDGE,
    "resolve": IntentKind.RESOLVE,
    "diagnose": IntentKind.DIAGNOSE,
    "ticket": IntentKind.TICKET,
}
NEEDS_INCIDENT = frozenset(
    {
        IntentKind.ACKNOWLEDGE,
        IntentKind.RESOLVE,
        IntentKind.DIAGNOSE,
        IntentKind.QUESTION,
        IntentKind.ACTION,
        IntentKind.TICKET,
        IntentKind.SNOOZE,
        IntentKind.STATUS,
        IntentKind.APPROVE,
        IntentKind.DENY,
    }
)


def button_intent(msg: InboundMessage) -> tuple[Intent, int | None]:
    """A click → (intent, action id for approve/deny buttons)."""
    action_id = msg.action or ""
    name, _, arg = action_id.partition(":")
    if name in _BUTTON_INTENTS:
        return Intent(kind=_BUTTON_INTENTS[name], text=action_id, source="button"), None
    if name == "action" and arg in {a.value for a in ActionKind}:
        return Intent(
            kind=IntentKind.ACTION, action=ActionKind(arg), text=action_id, source="button"
        ), None
    if name in ("approve", "deny") and arg.isdigit():
        kind = IntentKind.APPROVE if name == "approve" else IntentKind.DENY
        return Intent(kind=kind, text=action_id, source="button"), int(arg)
    if name == "assign" and arg:
        return Intent(kind=IntentKind.TICKET, assignee=arg, text=action_id, source="button"), None
    return Intent(kind=IntentKind.UNKNOWN, text=action_id, source="button"), None


class Conversation:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        router: Router,
        chaos: ChaosSwitch,
        chain: ProviderChain | None,
    ) -> None:
        self.cfg, self.store, self.router, self.chaos, self.chain = cfg, store, router, chaos, chain
        router.on_inbound = self.handle

    async def _understand(self, msg: InboundMessage, inc: Incident | None) -> Intent:
        """The grammar places the common phrasings; the LLM only reads what it cannot."""
        context = f"incident #{inc.short_id} {inc.title} (service {inc.service})" if inc else ""
        people = [n for p in self.cfg.people for n in (p.name, *p.aliases)]
        known = parse(msg.text, services=list(self.cfg.services), people=people)
        if known.kind != IntentKind.UNKNOWN or self.chain is None:
            return known
        return await understand(
            msg.text,
            services=list(self.cfg.services),
            people=people,
            chain=self.chain,
            context=context,
        )

    async def handle(self, msg: InboundMessage, inc: Incident | None, prompt: int | None) -> None:
        """`prompt`: the action whose approval prompt this message directly answers, if any."""
        actor = actor_for(self.cfg, msg)
        action_id: int | None = None
        if msg.command == "incident":
            await self._command(msg, actor)
            return
        if msg.command == "oncall":
            intent = Intent(kind=IntentKind.ONCALL, text=msg.text, source="command")
        elif msg.action:
            intent, action_id = button_intent(msg)
        else:
            intent = await self._understand(msg, inc)
            decision = intent.kind in (IntentKind.APPROVE, IntentKind.DENY)
            if decision and not intent.incident_ref and not _EXPLICIT.search(msg.text):
                if prompt is None:
                    await self.router.answer(msg, inc, _say_it(intent, inc))
                    return
                action_id = prompt  # "yes" as the direct answer to the approval prompt
        if intent.incident_ref and (inc is None or str(inc.short_id) != intent.incident_ref):
            try:
                async with self.store.read() as conn:
                    inc = await lifecycle.find(conn, intent.incident_ref)
            except NotFound:
                await self.router.answer(
                    msg, None, Reply(f"There is no incident #{intent.incident_ref}.", "error")
                )
                return
        if inc is not None and await self._out_of_storm(msg, inc):
            if msg.action == "open" or intent.kind == IntentKind.UNKNOWN:
                return  # "#42", or its button on the digest: the thread opening is the answer
        elif msg.action == "open":
            return  # its thread is open already
        log.info(
            "conversation.intent",
            kind=intent.kind.value,
            source=intent.source,
            incident=inc.id if inc else None,
        )
        if inc is None and intent.kind in NEEDS_INCIDENT:
            text = "Which incident? Reply in its thread, or name it like `#42`. Open ones: `list`."
            await self.router.answer(msg, None, Reply(text, "info"))
            return
        reply = await self._dispatch(msg, actor, intent, inc, action_id)
        if reply is None and msg.respond_to is not None and inc is not None:
            # the effect is told in the incident's thread; the command still gets its answer
            reply = Reply(f"✅ Done: `{msg.text}` (#{inc.short_id}: see its thread).", "info")
        if reply is not None:
            await self.router.answer(msg, inc, reply)

    async def _out_of_storm(self, msg: InboundMessage, inc: Incident) -> bool:
        """Someone acted on an incident named only in a storm's digest where they said it:
        its own thread opens there (ahead of background work). True if it does."""
        storms = self.router.storms
        async with self.store.read() as conn:  # most messages are not about a storm's line
            if not await storms.named_only(conn, inc.id, msg.platform, msg.channel):
                return False
        async with self.store.write() as conn:
            opened = await storms.open_for(conn, inc.id, msg.platform, msg.channel)
        self.router.wake()
        return opened

    async def _dispatch(
        self,
        msg: InboundMessage,
        actor: Actor,
        intent: Intent,
        inc: Incident | None,
        action_id: int | None,
    ) -> Reply | None:
        match intent.kind:
            case IntentKind.HELP:
                return Reply(HELP, "help")
            case IntentKind.ONCALL:
                return await self._oncall(inc)
            case IntentKind.STATS:
                return await self._stats()
            case IntentKind.LIST:
                return await self._list()
            case IntentKind.CHAOS:
                return await self._chaos(actor, intent)
        if inc is None:
            return Reply(UNKNOWN, "info")
        async with self.store.write() as conn:
            reply = await self._in_incident(conn, msg, actor, intent, inc, action_id)
        self.router.wake()
        return reply

    async def _in_incident(
        self,
        conn: AsyncConnection,
        msg: InboundMessage,
        actor: Actor,
        intent: Intent,
        inc: Incident,
        action_id: int | None,
    ) -> Reply | None:
        cfg = self.cfg
        match intent.kind:
            case IntentKind.ACKNOWLEDGE:
                if await lifecycle.acknowledge(conn, cfg, inc, actor.name):
                    said = Reply(f"👀 Acknowledged by {actor.mention}.", "info")
                    return await self._everywhere(conn, msg, inc, said)
                return Reply(f"#{inc.short_id} is already {status_line(inc).lower()}.", "info")
            case IntentKind.RESOLVE:
                if await lifecycle.resolve(conn, cfg, inc, actor.name, "marked resolved in chat"):
                    said = Reply(f"✅ Resolved by {actor.mention}.", "info")
                    return await self._elsewhere(conn, msg, inc, said)  # the rest heard it
                return Reply(f"#{inc.short_id} is already resolved.", "info")
            case IntentKind.DIAGNOSE:
                await lifecycle.enqueue_job(
                    conn, "diagnose", inc, {"reason": f"asked by {actor.name}"}
                )
                return Reply("🔎 Diagnosing again…", "info")
            case IntentKind.QUESTION:
                await lifecycle.enqueue_job(
                    conn,
                    "question",
                    inc,
                    {"question": intent.text or msg.text, "asked": message_to_json(msg)},
                )
                return None
            case IntentKind.ACTION:
                if not inc.is_open:
                    return Reply(
                        f"#{inc.short_id} is resolved; re-open it by alert before acting on it.",
                        "info",
                    )
                reply = await actions.request(conn, cfg, inc, actor, intent)
                return await self._everywhere(conn, msg, inc, reply)
            case IntentKind.APPROVE | IntentKind.DENY:
                target = action_id or await actions.pending_for(conn, inc.id)
                if target is None:
                    return Reply("Nothing is waiting for approval in this incident.", "info")
                reply = await actions.decide(
                    conn, cfg, inc, actor, target, intent.kind == IntentKind.APPROVE
                )
                return await self._everywhere(conn, msg, inc, reply)
            case IntentKind.TICKET:
                return await tickets.request(conn, cfg, inc, actor, intent, msg)
            case IntentKind.SNOOZE:
                seconds = intent.duration_s or 1800
                until = await lifecycle.snooze(conn, cfg, inc, actor.name, seconds)
                return Reply(f"😴 Snoozed until {until:%H:%M} UTC by {actor.mention}.", "info")
            case IntentKind.STATUS:
                return Reply(await _status(conn, inc), "info")
        return Reply(UNKNOWN, "info")

    async def _everywhere(
        self, conn: AsyncConnection, msg: InboundMessage, inc: Incident, reply: Reply
    ) -> Reply | None:
        """Say `reply` in every conversation of the incident; returned to be said also where
        `msg` came from when that is none of them (a DM, another channel)."""
        await lifecycle.enqueue_reply(conn, self.cfg, inc, reply)
        return await self._elsewhere(conn, msg, inc, reply)

    async def _elsewhere(
        self, conn: AsyncConnection, msg: InboundMessage, inc: Incident, reply: Reply
    ) -> Reply | None:
        """`reply` when `msg` came from outside the incident's conversations, which have heard
        the news already; else None."""
        return None if await self.router.in_conversation(conn, msg, inc) else reply

    async def _command(self, msg: InboundMessage, actor: Actor) -> None:
        """`/incident <description>` opens a manual incident; `/incident list|stats|help`."""
        text = msg.text.strip()
        word = text.lower()
        if word in ("", "help"):
            await self.router.answer(
                msg,
                None,
                Reply(
                    "`/incident <what is wrong>` opens an incident; `/incident list`; `/incident stats`.\n"
                    + HELP,
                    "info",
                ),
            )
            return
        if word in ("list", "stats"):
            reply = await (self._list() if word == "list" else self._stats())
            await self.router.answer(msg, None, reply)
            return
        async with self.store.write() as conn:
            inc = await lifecycle.open_manual(
                conn, self.cfg, text, actor.name, (msg.platform, msg.channel)
            )
        self.router.wake()
        log.info("incident.manual", incident=inc.id, by=actor.name)
        if msg.respond_to is not None:
            text = f"🆕 Opened #{inc.short_id}: {inc.title}. Diagnosing it in its thread."
            await self.router.answer(msg, inc, Reply(text, "info"))

    async def _stats(self) -> Reply:
        async with self.store.read() as conn:
            s = await stats.compute(conn)
        i, d = s["incidents"], s["diagnoses"]
        mtta = f"{s['mtta_s'] / 60:.1f} min" if s["mtta_s"] is not None else "–"
        mttr = f"{s['mttr_s'] / 60:.1f} min" if s["mttr_s"] is not None else "–"
        text = (
            f"📊 Incidents: {i['triggered']} triggered, {i['acknowledged']} acknowledged, {i['resolved']} resolved · "
            f"MTTA {mtta} · MTTR {mttr}\n"
            f"Diagnoses: "
            + ", ".join(f"{k} {v}" for k, v in d.items())
            + f" · dropped requests: {s['user_dropped_count']}"
            f" · outbox: {s['outbox']['pending']} pending, {s['outbox']['failed']} failed"
        )
        return Reply(text, "info")

    async def _list(self) -> Reply:
        async with self.store.read() as conn:
            open_ = [i for i in await lifecycle.list_incidents(conn, None, 50) if i.is_open]
        if not open_:
            return Reply("No open incidents. 🎉", "list")
        lines = [
            f"• #{i.short_id} [{i.severity}] {i.title} — {i.service or '-'} — {status_line(i)}"
            for i in open_[:15]
        ]
        return Reply("Open incidents:\n" + "\n".join(lines), "list")

    async def _oncall(self, inc: Incident | None) -> Reply:
        """The rotations' current shifts (else the responders), and this incident's chain."""
        lines = [oncall.describe(self.cfg, utcnow())]
        if not lines[0]:
            responders = [
                p.name for p in self.cfg.people if "responder" in p.roles or "approver" in p.roles
            ]
            lines[0] = "Responders: " + (
                ", ".join(responders) if responders else "nobody is configured in `people`"
            )
        if inc is not None:
            if inc.acknowledged_by:
                lines.append(f"{inc.acknowledged_by} acknowledged #{inc.short_id}.")
            async with self.store.read() as conn:
                chain = await escalation.describe(conn, self.cfg, inc.id)
            if chain:
                lines.append(f"#{inc.short_id} {chain}.")
        return Reply("\n".join(lines), "info")

    async def _chaos(self, actor: Actor, intent: Intent) -> Reply:
        if not actor.has("admin"):
            return Reply(
                f"🚫 Only admins can switch chaos mode ({actor.mention} is not one).", "error"
            )
        enabled = True if intent.enabled is None else intent.enabled
        await self.chaos.set(enabled, actor.name)
        state = "ON: every LLM call now fails, watch the fallbacks" if enabled else "OFF"
        return Reply(f"🧪 Chaos mode {state} (by {actor.mention}).", "info")


def _say_it(intent: Intent, inc: Incident | None) -> Reply:
    verb = "approve" if intent.kind == IntentKind.APPROVE else "deny"
    ref = f"#{inc.short_id}" if inc else "#<incident>"
    return Reply(
        f"To {verb} a pending action, say “{verb} {ref}” (a bare “yes” or “no” only counts "
        "as the answer to my approval question).",
        "info",
    )


async def _status(conn: AsyncConnection, inc: Incident) -> str:
    data = await lifecycle.detail(conn, inc)
    lines = [
        f"#{inc.short_id} {inc.title} — {status_line(inc)} · {inc.alert_count} alert(s) · severity {inc.severity}"
    ]
    if data["diagnoses"]:
        last = data["diagnoses"][-1]
        lines.append(f"Last diagnosis ({last['source']}): {last['summary']}")
    for a in data["actions"][-3:]:
        lines.append(
            f"Action {a['action']} {a['service']}: {a['state']}"
            + (f" — {a['outcome']}" if a["outcome"] else "")
        )
    for tk in data["tickets"]:
        lines.append(f"Ticket: {tk['key'] or tk['state']} {tk['url'] or ''}".rstrip())
    if inc.status == Status.RESOLVED:
        lines.append("Postmortem: `opsbot postmortem " + str(inc.short_id) + "`")
    return "\n".join(lines)
