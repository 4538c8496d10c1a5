"""Data placed in Jira, Slack and Discord markup is shown as written: no formatting, links,
macros, mentions or a block closed early."""

from __future__ import annotations

from bot.chat import escape
from bot.chat.renderers import block_kit


def test_jira_markup_in_data_is_shown_as_written() -> None:
    hostile = "{noformat}\nh1. pwned [click|https://evil.example] *bold* -gone- !x.png! a|b {code}"
    out = escape.jira(hostile)
    assert "\n" not in out  # no line-start markup (headings, lists, quotes)
    assert out == (
        r"\{noformat\} h1. pwned \[click\|https://evil.example\] \*bold\* \-gone\- "
        r"\!x.png\! a\|b \{code\}"
    )
    assert escape.jira("java.lang.OutOfMemoryError: Java heap space") == (
        "java.lang.OutOfMemoryError: Java heap space"
    )


def test_slack_control_characters_are_entities() -> None:
    assert block_kit.escape("<!channel> <@U123> <https://evil|ok> & co") == (
        "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|ok&gt; &amp; co"
    )


def test_discord_markdown_and_mentions_are_defused() -> None:
    out = escape.discord("@everyone @here <@123> <@&456> <#789> **x** [a](http://e) `c` ||s||")
    assert "@everyone" not in out and "@here" not in out
    assert "<@123>" not in out and "<@&456>" not in out and "<#789>" not in out
    assert r"\*\*x\*\*" in out and r"\[a\]\(http://e\)" in out and r"\`c\`" in out
    assert r"\|\|s\|\|" in out
