"""Text every renderer shares: cut at a line boundary with a link, mentions defused, and the
buttons a platform cannot show offered as what to type."""

from __future__ import annotations

import dataclasses

from bot.chat.messages import Button, IncidentName, Reply
from bot.chat.renderers import plain_text, text_choices
from bot.chat.text import ZWSP, cut, neutralise
from tests.fakes.direct_line import DirectLine

URL = "https://opsbot.example.com/#/incidents/abc"
LINE = dataclasses.replace(DirectLine.capabilities, max_length=200)


def test_a_text_that_fits_is_left_alone() -> None:
    assert cut("one\ntwo", 7, URL) == "one\ntwo"


def test_a_long_text_keeps_whole_lines_and_says_how_many_more_and_where() -> None:
    text = "\n".join(f"line {n:02d}" for n in range(50))
    out = cut(text, 120, URL)
    assert len(out) <= 120
    kept, more = out.rsplit("\n", 1)
    assert kept.split("\n") == [f"line {n:02d}" for n in range(len(kept.split("\n")))]
    assert more == f"…({50 - len(kept.split(chr(10)))} more lines: {URL})"


def test_a_first_line_longer_than_the_limit_is_clipped_itself() -> None:
    out = cut("x" * 500 + "\nsecond\nthird", 100)
    assert len(out) <= 100
    assert out.startswith("x" * 50) and out.endswith("…\n…(2 more lines)")


def test_mentions_are_defused_and_the_rest_is_unchanged() -> None:
    said = neutralise("@everyone @here @channel <!channel> <@U123> <@&42> mail@here.com x@y")
    assert "@everyone" not in said and "@here " not in said and "<!" not in said
    assert "<@" not in said and f"@{ZWSP}everyone" in said
    assert said.endswith("x@y")


def test_buttons_that_do_not_fit_become_what_to_type() -> None:
    buttons = [Button("approve:5", "Approve"), Button("deny:5", "Deny")]
    assert text_choices(buttons, LINE, IncidentName(42, "checkout")) == (
        "Reply “approve #42” · “deny #42”"
    )


def test_plain_text_names_the_incident_on_a_line_and_keeps_the_choices_when_cut() -> None:
    reply = Reply(
        "\n".join(["Restart checkout? Needs approval."] + [f"detail {n}" for n in range(40)]),
        "approval",
        buttons=[Button("approve:5", "Approve"), Button("deny:5", "Deny")],
        incident=IncidentName(42, "checkout"),
        more_url=URL,
    )
    out = plain_text.reply(reply, LINE)
    assert len(out) <= LINE.max_length
    assert out.startswith("#42 checkout: Restart checkout?")
    assert out.endswith("Reply “approve #42” · “deny #42”")
    assert f"more lines: {URL})" in out
