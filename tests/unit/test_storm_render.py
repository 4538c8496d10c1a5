"""A storm digest rendered for every platform: grouped by service and severity, every
incident named while it fits, and cut with "… and N more" at each platform's limits."""

from __future__ import annotations

import re

from slack_sdk.models.blocks import Block

from bot.chat.adapters.console import ConsoleAdapter
from bot.chat.adapters.discord import DiscordAdapter
from bot.chat.adapters.slack import SlackAdapter
from bot.chat.adapters.whatsapp import WhatsAppAdapter
from bot.chat.messages import StormDigest, StormLine
from bot.chat.render import fit, storm_buttons
from bot.chat.renderers import block_kit, console_json, discord_embeds, whatsapp_text

SEVERITIES = ("critical", "warning", "info")


def digest(n: int, services: int = 4) -> StormDigest:
    lines = [
        StormLine(
            f"inc{i}",
            i,
            f"Alert{i:04d}",
            f"svc-{i % services}",
            SEVERITIES[i % 3],
            "resolved" if i % 5 == 0 else "triggered",
        )
        for i in range(1, n + 1)
    ]
    return StormDigest(lines, 40.0, buttons=storm_buttons(lines, 25))


def named(text: str) -> set[int]:
    return {int(m) for m in re.findall(r"#(\d+) Alert", text)}


def more(text: str) -> int:
    return sum(int(m) for m in re.findall(r"… and (\d+) more", text))


def test_a_small_storm_names_every_incident_grouped_by_service_and_severity() -> None:
    d = digest(12, services=2)
    assert d.headline == "⚡ Storm: 12 incidents in 40 s"
    assert d.tally == "10 open · 2 resolved"
    text = whatsapp_text.storm(d, WhatsAppAdapter.capabilities)
    assert named(text) == set(range(1, 13))
    assert "svc-0 · 🔴 critical (2): #6 Alert0006 · #12 Alert0012" in text
    assert "✅ #5 Alert0005" in text  # resolved ones shown resolved
    buttons = [b.label for b in d.buttons]
    assert buttons[:4] == ["Open #3", "Open #6", "Open #9", "Open #12"]  # critical first
    assert "Open #5" not in buttons and len(buttons) == 10


def test_slack_keeps_to_block_kit_limits_and_says_how_many_more() -> None:
    d = digest(3000, services=60)
    text, blocks = block_kit.storm(d, SlackAdapter.capabilities)
    assert len(blocks) <= block_kit.BLOCKS_MAX
    for raw in blocks:
        Block.parse(raw).validate_json()  # type: ignore[union-attr]
        if raw["type"] == "section":
            assert len(raw["text"]["text"]) <= block_kit.SECTION_MAX
    shown = " ".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    assert len(named(shown)) + more(shown) == 3000
    assert "Storm: 3000 incidents" in text


def test_discord_whatsapp_and_the_console_cut_to_their_lengths() -> None:
    d = digest(500)
    embed = discord_embeds.storm(d, DiscordAdapter.capabilities).embed
    assert embed is not None and embed.description is not None
    assert len(embed.description) <= discord_embeds.DESCRIPTION_MAX
    assert len(named(embed.description)) + more(embed.description) == 500
    text = whatsapp_text.storm(d, WhatsAppAdapter.capabilities)
    assert len(text) <= WhatsAppAdapter.capabilities.max_length
    assert len(named(text)) + more(text) == 500
    shown = console_json.storm(d, ConsoleAdapter.capabilities)
    assert len(shown["incidents"]) == 500 and shown["headline"] == d.headline


def test_fit_keeps_what_fits_and_counts_the_rest() -> None:
    assert fit(["a", "b", "c"], 5) == "a\nb\nc"
    ten = ["x" * 10] * 4
    assert fit(ten, 43) == "\n".join(ten)
    assert fit(ten, 34) == "\n".join([*ten[:2], "… and 2 more"])
    assert fit(ten, 30) == "\n".join([ten[0], "… and 3 more"])  # the marker must fit too
    assert fit(ten, 30, weights=[1, 2, 3, 4]) == "\n".join([ten[0], "… and 9 more"])
    assert fit(ten, 5) == "… and 4 more"
