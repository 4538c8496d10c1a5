"""Discord translation and rendering: interactions → InboundMessage, incidents → embeds."""

from __future__ import annotations

from datetime import UTC, datetime

import discord

from bot.chat.adapters.base import Button, Reply, RootView, ThreadRef
from bot.chat.adapters.discord import DiscordAdapter, from_interaction
from bot.chat.messages import IncidentName
from bot.chat.renderers.discord_embeds import (
    SEVERITY_COLOUR,
    components,
    parse_custom_id,
    reply,
    root,
)

CAPS = DiscordAdapter.capabilities

CHANNEL, THREAD, ROOT = "100", "200", "200"


def _view(**kw: object) -> RootView:
    base: dict = {
        "incident_id": "inc1",
        "short_id": 7,
        "title": "checkout 5xx",
        "status": "triggered",
        "severity": "critical",
        "service": "checkout",
        "labels": {"alertname": "HighErrorRate", "team": "@everyone"},
        "started_at": datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        "alert_count": 2,
        "status_line": "Triggered",
        "links": [("Runbook", "https://runbooks.example.com/checkout")],
        "buttons": [Button("ack", "Acknowledge", "inc1", "primary")],
        "summary": "@everyone checkout is **down** <@&112233445566778899>",
    }
    base.update(kw)
    return RootView(**base)


def _interaction(kind: int, data: dict, channel: dict, **extra: object) -> dict:
    return {
        "id": "9001",
        "type": kind,
        "token": "tok",
        "data": data,
        "channel": channel,
        "member": {"user": {"id": "42", "username": "ravi"}},
        **extra,
    }


def test_a_command_in_an_incident_thread_belongs_to_that_thread() -> None:
    payload = _interaction(
        2,
        {"name": "ack", "options": []},
        {"id": THREAD, "type": 11, "parent_id": CHANNEL},
    )
    msg = from_interaction(payload)
    assert msg is not None
    assert (msg.channel, msg.thread, msg.command, msg.text) == (
        CHANNEL,
        ThreadRef("discord", CHANNEL, THREAD),
        "ack",
        "ack",
    )
    assert (msg.user_id, msg.event_id) == ("42", "interaction:9001")
    assert msg.respond_to == "interaction:tok"  # its answer goes to the interaction's webhook


def test_a_command_is_said_as_the_sentence_the_conversation_understands() -> None:
    def text(name: str, **options: str) -> str:
        data = {"name": name, "options": [{"name": k, "value": v} for k, v in options.items()]}
        msg = from_interaction(_interaction(2, data, {"id": CHANNEL, "type": 0}))
        assert msg is not None and msg.thread is None
        return msg.text

    assert text("incident", description="checkout is slow") == "checkout is slow"
    assert text("status", incident="#4") == "status #4"
    assert text("chaos", mode="off") == "chaos off"
    assert text("oncall") == "oncall"


def test_a_click_on_a_root_belongs_to_the_thread_started_from_it() -> None:
    payload = _interaction(
        3,
        {"custom_id": "ack|inc1", "component_type": 2},
        {"id": CHANNEL, "type": 0},
        message={"id": ROOT, "flags": 0},
    )
    msg = from_interaction(payload)
    assert msg is not None
    assert msg.thread == ThreadRef("discord", CHANNEL, ROOT)
    assert (msg.action, msg.action_value) == ("ack", "inc1")


def test_a_confirmation_click_names_its_incident_by_value_not_by_an_ephemeral_message() -> None:
    payload = _interaction(
        3,
        {"custom_id": "action:restart|inc1", "component_type": 2},
        {"id": CHANNEL, "type": 0},
        message={"id": "555", "flags": 64},
    )
    msg = from_interaction(payload)
    assert msg is not None
    assert msg.thread is None
    assert (msg.action, msg.action_value) == ("action:restart", "inc1")


def test_pings_and_unknown_interactions_are_not_messages() -> None:
    assert from_interaction({"id": "1", "type": 1}) is None
    assert from_interaction({"id": "1", "type": 5}) is None


def test_the_root_is_an_embed_coloured_by_severity_with_every_fact() -> None:
    rendered = root(_view(), CAPS)
    embed = rendered.embed
    assert embed is not None and rendered.content is None
    assert embed.colour == discord.Colour(SEVERITY_COLOUR["critical"])
    fields = {f.name: f.value for f in embed.fields}
    assert set(fields) >= {"Status", "Service", "Severity", "Started", "Alerts", "Labels", "Links"}
    assert fields["Links"] == "[Runbook](https://runbooks.example.com/checkout)"
    assert "<t:1795600800:f>" in fields["Started"]
    resolved = root(_view(status="resolved", buttons=[]), CAPS).embed
    assert resolved is not None and resolved.colour == discord.Colour(0x2EB67D)
    assert root(_view(buttons=[]), CAPS).view is None


def test_alert_text_cannot_ping_anyone() -> None:
    embed = root(_view(), CAPS).embed
    assert embed is not None and embed.description is not None
    assert (
        "@everyone" not in embed.description and "<@&112233445566778899>" not in embed.description
    )
    assert "\\*\\*down\\*\\*" in embed.description  # markdown is shown, not applied
    labels = next(f.value for f in embed.fields if f.name == "Labels")
    assert "@everyone" not in labels
    said = reply(Reply("@here the db is down"), CAPS)
    assert said.content is not None and "@here" not in said.content


def test_buttons_go_five_to_a_row_and_dangerous_ones_ask_first() -> None:
    buttons = [Button(f"b{i}", f"B{i}", "v") for i in range(7)]
    buttons.append(Button("action:restart", "Restart", "inc1", "danger"))
    view = components(buttons, CAPS)
    assert view is not None
    rows = view.to_components()
    assert [len(r["components"]) for r in rows] == [5, 3]
    danger = rows[1]["components"][-1]
    assert parse_custom_id(danger["custom_id"]) == ("action:restart", "inc1", True)
    assert danger["style"] == discord.ButtonStyle.danger.value


def test_long_text_is_cut_at_a_line_boundary_with_a_link_to_the_rest() -> None:
    text = "\n".join(f"line {i}" for i in range(1000))
    message = Reply(text, incident=IncidentName(7, "checkout"), more_url="http://opsbot.test/#/7")
    said = reply(message, CAPS).content
    assert said is not None and len(said) <= 2000
    assert said.endswith("more lines: http://opsbot.test/#/7)")
    assert said.split("\n")[-2].startswith("line ")  # whole lines before the note
