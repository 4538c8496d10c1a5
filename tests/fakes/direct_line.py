"""A platform of direct lines (no threads, no edits, no buttons, 1,600 characters), as a
messaging API like WhatsApp over Twilio is: each person has one line that all of their
incidents share. It records what each person's phone would show, rendered as plain text.

It stands in for a real thread-less adapter (it takes the `whatsapp` route key) so the chat
layer's direct-line behaviour is tested before, and besides, the real one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

from bot.chat.adapters.base import Capabilities, Reply, RootView, ThreadRef
from bot.chat.renderers import plain_text

PLATFORM = "whatsapp"
SETTINGS = {
    "account_sid": "AC0FAKE",
    "auth_token": "fake-auth-token",
    "from_number": "+14155238886",
}


@dataclass(slots=True)
class Sent:
    id: str
    text: str
    key: str | None = None


@dataclass
class DirectLine:
    """The `ChatAdapter` of a thread-less platform; `lines[person]` is what they received."""

    platform: str = PLATFORM
    capabilities: ClassVar[Capabilities] = Capabilities(
        can_edit=False,
        has_threads=False,
        buttons_per_message=0,
        buttons_per_row=0,
        confirm_step=False,
        max_length=1600,
        markup="plain_text",
        mention="@{user_id}",
    )
    lines: dict[str, list[Sent]] = field(default_factory=dict)
    roots: list[Sent] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _send(self, channel: str, text: str, key: str | None = None) -> Sent:
        sent = Sent(f"SM{next(self._ids):06d}", text, key)
        self.lines.setdefault(channel, []).append(sent)
        return sent

    async def post_root(self, channel: str, view: RootView, key: str | None = None) -> ThreadRef:
        sent = self._send(channel, plain_text.root(view, self.capabilities), key)
        self.roots.append(sent)
        return ThreadRef(self.platform, channel, sent.id)

    async def find_root(self, channel: str, key: str) -> ThreadRef | None:
        """Like listing the messages sent to a number: the root is found by its key."""
        found = next((s for s in self.lines.get(channel, []) if s.key == key), None)
        return ThreadRef(self.platform, channel, found.id) if found else None

    async def update_root(self, thread: ThreadRef, view: RootView) -> None:
        raise AssertionError("a platform that cannot edit was asked to edit")

    async def reply(self, thread: ThreadRef, message: Reply) -> str:
        return self._send(thread.channel, plain_text.reply(message, self.capabilities)).id

    async def permalink(self, thread: ThreadRef) -> str | None:
        return None

    def texts(self, channel: str) -> list[str]:
        return [s.text for s in self.lines.get(channel, [])]
