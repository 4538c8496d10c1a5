"""Discord rendering: an incident's root as an embed with buttons, replies as text or embeds.

Every piece of data is markdown-escaped and its mentions defused, and every message is sent
with no allowed mentions, so alert or log text can never ping @everyone, a role or a person.
Texts are cut at a line boundary under Discord's limits; buttons go five to a row, and a
dangerous one asks first (Discord has no confirmation dialog).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import discord

from agent.types import Diagnosis
from bot.chat import escape
from bot.chat.adapters.base import Capabilities
from bot.chat.messages import Button, Reply, RootView, StormDigest
from bot.chat.render import (
    SEVERITY_MARK,
    SOURCE_MARK,
    STORM_OPEN_HINT,
    fit,
    minutes,
    say_hint,
    storm_lines,
)
from bot.chat.renderers import named, rows, text_choices
from bot.chat.text import cut, neutralise
from bot.incidents.models import aware

# Discord's documented limits (https://discord.com/developers/docs/resources/message).
TITLE_MAX, DESCRIPTION_MAX, FIELD_MAX, LABEL_MAX = 256, 4096, 1024, 80
CONTENT_MAX, CUSTOM_ID_MAX, BUTTONS_PER_ROW, ROWS_MAX, THREAD_NAME_MAX = 2000, 100, 5, 5, 100
EVIDENCE_SHOWN, EVIDENCE_QUOTE_MAX = 5, 300
RESOLVED_COLOUR = 0x2EB67D
SEVERITY_COLOUR = {"critical": 0xE01E5A, "warning": 0xECB22E, "info": 0x36C5F0}
SOURCE_COLOUR = {
    "live": 0x2EB67D,
    "fallback": 0xECB22E,
    "cache": 0x36C5F0,
    "offline": 0x99AAB5,
    "static": 0xE01E5A,
}
_STYLES = {"primary": discord.ButtonStyle.primary, "danger": discord.ButtonStyle.danger}
# A danger button's custom id starts with this: Discord has no confirm dialog, so a click
# asks again in an ephemeral follow-up before anything reaches the router.
ASK_FIRST = "?"
SEPARATOR = "|"
NO_MENTIONS = discord.AllowedMentions.none()


@dataclass(slots=True)
class Rendered:
    """The arguments of one `send`/`edit` call."""

    content: str | None
    embed: discord.Embed | None
    view: discord.ui.View | None

    def kwargs(self) -> dict[str, Any]:
        return {"content": self.content, "embed": self.embed, "view": self.view}


def safe(text: str) -> str:
    """Data shown as written: its markdown (masked links included) escaped, its mentions defused."""
    return escape.discord(text)


def custom_id(b: Button) -> str:
    cid = f"{ASK_FIRST if b.style == 'danger' else ''}{b.action_id}{SEPARATOR}{b.value}"
    return cid[:CUSTOM_ID_MAX]


def parse_custom_id(cid: str) -> tuple[str, str, bool]:
    """(action_id, value, ask first) from a button's custom id."""
    ask = cid.startswith(ASK_FIRST)
    action_id, _, value = cid.removeprefix(ASK_FIRST).partition(SEPARATOR)
    return action_id, value, ask


def components(buttons: list[Button], caps: Capabilities) -> discord.ui.View | None:
    """Buttons in rows of five (Discord's maximum), as many as fit a message."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for i, row in enumerate(rows(buttons, caps)):
        for b in row:
            view.add_item(
                discord.ui.Button(
                    label=b.label[:LABEL_MAX],
                    custom_id=custom_id(b),
                    style=_STYLES.get(b.style or "", discord.ButtonStyle.secondary),
                    row=i,
                )
            )
    view.stop()  # answered by the adapter, not by discord.py's view callbacks
    return view


def _mark(view: RootView) -> str:
    return "✅" if view.status == "resolved" else SEVERITY_MARK.get(view.severity, "⚪")


def thread_name(view: RootView) -> str:
    return neutralise(f"#{view.short_id} {view.title}")[:THREAD_NAME_MAX]


def root(view: RootView, caps: Capabilities) -> Rendered:
    """An embed coloured by severity (green once resolved), with the incident's facts."""
    colour = RESOLVED_COLOUR if view.status == "resolved" else SEVERITY_COLOUR.get(view.severity)
    embed = discord.Embed(
        title=cut(neutralise(f"{_mark(view)} #{view.short_id} {view.title}"), TITLE_MAX),
        description=cut(safe(view.summary), DESCRIPTION_MAX) if view.summary else None,
        colour=colour or 0x99AAB5,
        timestamp=cast(datetime, aware(view.started_at)),
    )
    started = int(cast(datetime, aware(view.started_at)).timestamp())
    embed.add_field(name="Status", value=cut(safe(view.status_line), FIELD_MAX))
    embed.add_field(name="Service", value=safe(view.service or "unknown"))
    embed.add_field(name="Severity", value=safe(view.severity))
    embed.add_field(name="Started", value=f"<t:{started}:f> (<t:{started}:R>)")
    embed.add_field(name="Alerts", value=str(view.alert_count))
    if view.labels:
        labels = " ".join(neutralise(f"`{k}={v}`") for k, v in view.labels.items())
        embed.add_field(name="Labels", value=cut(labels, FIELD_MAX), inline=False)
    if view.links:
        links = " · ".join(f"[{safe(label)}]({url})" for label, url in view.links)
        embed.add_field(name="Links", value=cut(links, FIELD_MAX), inline=False)
    return Rendered(None, embed, components(view.buttons, caps))


def diagnosis_embed(d: Diagnosis) -> discord.Embed:
    """Which layer answered (field and colour), the finding, the evidence, what to do next."""
    source = d.source.value
    embed = discord.Embed(
        title=cut(neutralise(f"{SOURCE_MARK.get(source, '')} {d.summary}"), TITLE_MAX),
        description=cut(safe(d.root_cause), DESCRIPTION_MAX),
        colour=SOURCE_COLOUR.get(source, 0x99AAB5),
    )
    layer = f"{source} · {d.confidence:.0%} confident"
    if d.cache_age_s is not None:
        layer += f" · cached {minutes(d.cache_age_s)} ago"
    embed.add_field(name="Diagnosis source", value=layer, inline=False)
    if d.evidence:
        quotes = [
            f"`{ev.tool}` {safe(' '.join(ev.quote.split())[:EVIDENCE_QUOTE_MAX])}"
            for ev in d.evidence[:EVIDENCE_SHOWN]
        ]
        embed.add_field(name="Evidence", value=cut("\n".join(quotes), FIELD_MAX), inline=False)
    if d.checks:
        checks = "\n".join(f"{i}. {safe(c)}" for i, c in enumerate(d.checks, 1))
        embed.add_field(name="Check first", value=cut(checks, FIELD_MAX), inline=False)
    if d.mitigation:
        embed.add_field(name="Mitigation", value=cut(safe(d.mitigation), FIELD_MAX), inline=False)
    if d.proposed_action and d.action.value != "none":
        embed.add_field(
            name="Proposed action", value=f"`{d.action.value}`: say “{say_hint(d)}”", inline=False
        )
    if d.past_fixes:
        embed.set_footer(text=f"📎 {d.past_fixes[:1].upper()}{d.past_fixes[1:]}"[:2048])
    return embed


def reply(message: Reply, caps: Capabilities) -> Rendered:
    """A diagnosis as an embed; anything else as text (the bot's own markdown kept, mentions
    defused, cut to Discord's length), with its link and buttons."""
    view = components(message.buttons, caps)
    if message.diagnosis is not None:
        return Rendered(None, diagnosis_embed(message.diagnosis), view)
    body = named(neutralise(message.text), message, caps)
    choices = text_choices(message.buttons, caps, message.incident)
    body += f"\n{choices}" if choices else ""
    link = f"\n[{safe(message.link[0])}](<{message.link[1]}>)" if message.link else ""
    return Rendered(cut(body, caps.max_length - len(link), message.more_url) + link, None, view)


def confirm_prompt(label: str, action_id: str, value: str, caps: Capabilities) -> Rendered:
    """What a danger button answers with: the same choice again, confirmed in one more click."""
    view = components(
        [Button(action_id, f"Yes, {label.lower()}", value, "primary"), Button("cancel", "Cancel")],
        caps,
    )
    text = f"**{safe(label)}**: are you sure? (Discord has no confirmation dialog.)"
    return Rendered(text, None, view)


def storm(digest: StormDigest, caps: Capabilities) -> Rendered:
    """A storm digest as an embed: headline, tally, a line per service and severity (cut to
    the embed's description with "… and N more"), open buttons."""
    lines, counts = storm_lines(digest, DESCRIPTION_MAX, lambda h: f"**{safe(h)}**", safe)
    embed = discord.Embed(
        title=cut(digest.headline, TITLE_MAX),
        description=fit(lines, DESCRIPTION_MAX, "\n", counts),
        colour=RESOLVED_COLOUR if digest.over else SEVERITY_COLOUR["warning"],
    )
    embed.set_footer(text=digest.tally if digest.over else f"{digest.tally} · {STORM_OPEN_HINT}")
    return Rendered(None, embed, components(digest.buttons, caps))
