"""The platform-neutral chat model: what the router sends and receives.

An adapter only translates: `RootView`/`Reply` → platform calls, platform events →
`InboundMessage`. Threads are `ThreadRef(platform, channel, thread_id)`; WhatsApp has no
threads, so its thread_id is the conversation (the person's number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from agent.types import Diagnosis


@dataclass(frozen=True, slots=True)
class ThreadRef:
    platform: str
    channel: str
    thread_id: str


@dataclass(frozen=True, slots=True)
class Button:
    """A clickable choice; `action_id` is what comes back in `InboundMessage.action`."""

    action_id: str
    label: str
    value: str = ""
    style: str | None = None  # primary | danger


@dataclass(slots=True)
class RootView:
    """Everything a thread's root message shows about an incident."""

    incident_id: str
    short_id: int
    title: str
    status: str
    severity: str
    service: str | None
    labels: dict[str, str]
    started_at: datetime
    alert_count: int
    status_line: str
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, url)
    buttons: list[Button] = field(default_factory=list)
    summary: str | None = None


@dataclass(slots=True)
class Reply:
    """A message in an incident's thread."""

    text: str
    kind: str = "info"  # info | diagnosis | action | approval | ticket | error | postmortem
    diagnosis: Diagnosis | None = None
    buttons: list[Button] = field(default_factory=list)
    link: tuple[str, str] | None = None
    key: str | None = None  # idempotency: a redelivery with the same key shows once, where possible


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


class ChatAdapter(Protocol):
    """The verbs every platform implements. Errors are `integrations.errors` subclasses."""

    platform: str

    async def post_root(self, channel: str, view: RootView) -> ThreadRef:
        """Post an incident's root message; the returned ref identifies its thread."""
        ...

    async def update_root(self, thread: ThreadRef, view: RootView) -> None:
        """Edit the root message in place (repeats, state changes)."""
        ...

    async def reply(self, thread: ThreadRef, message: Reply) -> str:
        """Post in the thread; returns the platform's message id."""
        ...

    async def permalink(self, thread: ThreadRef) -> str | None:
        """A URL that opens the thread, when the platform has one."""
        ...
