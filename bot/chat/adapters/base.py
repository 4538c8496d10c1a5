"""What every chat platform implements, and how a new one is added.

An adapter only translates: the message model (`bot.chat.messages`) → platform calls, and
platform events → `InboundMessage`. It declares what its platform can do in a frozen
`Capabilities`; the router and the renderers ask those, never the platform's name.

Conversations. An incident lives on a platform in a conversation, a `ThreadRef`:
- a thread (Slack, Discord, the console): `channel` is where the root was posted and
  `thread_id` the thread's id; every message in the thread belongs to that incident. Inbound,
  a message in a thread carries that same pair: where a platform reports the thread itself as
  the channel (a Discord thread is a channel), the adapter puts its parent channel in
  `channel` and the thread in `thread`;
- a person's direct line (WhatsApp, a DM) on a platform without threads
  (`has_threads=False`): `channel` is the person's address there (their number; routes name
  people, and the router resolves names through the people directory), `thread_id` the root
  message's id. Several incidents share one line: a message on it is about the incident it
  names ("#42 restart"), else the one this person was last sent, and every reply the bot sends
  on the line names its incident ("#42 checkout: …").

Adding a platform (Discord, WhatsApp, …) touches nothing else in the chat layer:

1. Protocol: write `bot/chat/adapters/<platform>.py` with a class that implements
   `ChatAdapter` below: `post_root`, `find_root`, `update_root`, `reply`, `permalink`,
   `post_digest` and `update_digest` (a storm's one message in a channel), and
   optionally `start()`/`stop()` (a connection of its own) and `mount(app)` (an HTTP route on
   the bot's FastAPI app for the platform's callbacks). Inbound, turn each person's message,
   click or command into an `InboundMessage` and `await accept(msg)`, which commits it before
   you acknowledge the platform; answer the platform 5xx when `accept` raises, so it retries.
   Use the same `channel` string in both directions (on a direct line, the sender's address). Raise `integrations.errors` (`RateLimited`,
   `TransientError`, `PermanentError`) from outbound calls: the outbox retries on them.
2. Capabilities: set a class attribute `capabilities = Capabilities(...)`: whether a sent
   message can be edited, whether it has threads, how many buttons fit a message and a row
   (0: approvals are by text, "approve #42"), whether a button can ask to confirm, the
   longest text a message may carry, the markup dialect (the renderer module's name) and how
   a person is mentioned.
3. Renderer: use the dialect's module in `bot/chat/renderers/` (`block_kit`, `plain_text`,
   `console_json`), or add one there: a module with `root(view, caps)` and
   `reply(reply, caps)` that escapes text in its dialect, neutralises mentions
   (`bot.chat.text.neutralise`), and cuts text with `bot.chat.text.cut`.
4. Runtime: add a `Platform` entry to `PLATFORMS` in `bot/chat/adapters/__init__.py`: the
   credentials that switch it on, its route targets, and `build` (import the adapter module
   inside it, so the CLI stays fast). Routes naming it without credentials then fail
   `opsbot check-config` and start-up.
5. Behaviour suite: add a driver to `tests/protocol/chat_drivers.py` (how a person sends a
   message there, what the platform received, through the platform's fake server in
   `tests/fakes/`) and list it in `DRIVERS`; `tests/protocol/test_chat_behaviour.py` then runs
   every shared case against it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.chat.messages import Button, Reply, RootView, StormDigest

__all__ = [
    "Button",
    "Capabilities",
    "ChatAdapter",
    "InboundMessage",
    "Reply",
    "RootView",
    "StormDigest",
    "ThreadRef",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform can do, as the router and the renderers need to know it."""

    can_edit: bool  # a sent message can be changed (else: no repeats, one line per state change)
    has_threads: bool  # else each person has one direct line shared by their incidents
    buttons_per_message: int  # 0: no buttons; choices are offered as text
    buttons_per_row: int
    confirm_step: bool  # a button can ask "are you sure?" before it is sent
    max_length: int  # characters of text in one message
    markup: str  # the dialect: a module in bot/chat/renderers/
    mention: str  # how to mention a person by platform id, e.g. "<@{user_id}>"

    def mention_of(self, user_id: str) -> str:
        return self.mention.format(user_id=user_id)


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """A conversation: a thread, or (`has_threads=False`) a person's direct line."""

    platform: str
    channel: str
    thread_id: str


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """An operator's message or click, as the router sees it."""

    platform: str
    channel: str
    user_id: str
    text: str
    event_id: str
    thread: ThreadRef | None = None
    user_name: str | None = None
    action: str | None = None  # a Button.action_id, for clicks
    action_value: str | None = None
    mentioned: bool = False
    command: str | None = None  # a slash command's name ("incident"), its text in `text`
    incident_id: str | None = None  # when the adapter knows the incident outright (console)
    reply_to: str | None = None  # the platform's id of the message this one answers, if any
    # Where the platform wants this command's answer (Discord: the interaction's webhook),
    # in the adapter's own words: its answers go there, as the thread id of a direct reply.
    respond_to: str | None = None


# What an adapter hands each inbound message to; False when it was seen before (a retry).
Accept = Callable[[InboundMessage], Awaitable[bool]]


class ChatAdapter(Protocol):
    """The verbs every platform implements. Errors are `integrations.errors` subclasses."""

    platform: str
    capabilities: Capabilities

    async def post_root(self, channel: str, view: RootView, key: str | None = None) -> ThreadRef:
        """Post an incident's root message; the returned ref identifies its conversation.

        `key` identifies this root for good: pass it to the platform where it deduplicates
        (Discord's `nonce` with `enforce_nonce`), or attach it so `find_root` can look for it.
        """
        ...

    async def find_root(self, channel: str, key: str) -> ThreadRef | None:
        """The root posted with `key` by an attempt whose answer was lost (a crash between the
        call and its record), or None when the platform shows none: it is then posted."""
        ...

    async def update_root(self, thread: ThreadRef, view: RootView) -> None:
        """Edit the root message in place (only called when `capabilities.can_edit`)."""
        ...

    async def reply(self, thread: ThreadRef, message: Reply) -> str:
        """Post in the conversation; returns the platform's message id."""
        ...

    async def permalink(self, thread: ThreadRef) -> str | None:
        """A URL that opens the conversation, when the platform has one."""
        ...

    async def post_digest(self, channel: str, digest: StormDigest, key: str) -> str:
        """Post a storm digest in the channel itself (no thread); returns its message id.
        `key` is its idempotency key, as for `post_root`."""
        ...

    async def find_digest(self, channel: str, key: str) -> str | None:
        """The message id of the digest posted with `key` by an attempt whose answer was lost,
        or None when the platform shows none (as `find_root`)."""
        ...

    async def update_digest(self, channel: str, message_id: str, digest: StormDigest) -> None:
        """Edit a storm digest in place (only called when `capabilities.can_edit`)."""
        ...
