"""The platform-neutral message model: what the bot says, built once as data.

An incident's root (`RootView`), every message in its conversation (`Reply`: diagnosis,
approval prompt, action result, ticket, postmortem summary, help, lists and other text) and a
channel's storm digest (`StormDigest`) are plain data; a renderer per markup dialect turns
them into what a platform shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.types import Diagnosis

KINDS = frozenset(
    {
        "info",
        "diagnosis",
        "answer",
        "approval",
        "action",
        "ticket",
        "postmortem",
        "help",
        "list",
        "error",
        "page",  # an escalation reminder: it must reach the person (WhatsApp: a template)
    }
)
"""What a `Reply` is; renderers may show kinds differently (a diagnosis as structured blocks)."""


@dataclass(frozen=True, slots=True)
class Button:
    """A clickable choice; `action_id` is what comes back in `InboundMessage.action`."""

    action_id: str
    label: str
    value: str = ""
    style: str | None = None  # primary | danger (a danger button asks to confirm, if it can)


@dataclass(slots=True)
class RootView:
    """Everything an incident's root message shows, as of the moment it is sent."""

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

    @property
    def name(self) -> IncidentName:
        return IncidentName(self.short_id, self.service or self.title)


@dataclass(slots=True)
class Reply:
    """A message in an incident's conversation, or an answer outside any incident."""

    text: str
    kind: str = "info"  # one of KINDS
    diagnosis: Diagnosis | None = None
    buttons: list[Button] = field(default_factory=list)
    link: tuple[str, str] | None = None
    key: str | None = None  # idempotency: a redelivery with the same key shows once, where possible
    # Set by the router when it is sent, never stored with the message:
    incident: IncidentName | None = None  # named on lines without threads, and in buttons as text
    more_url: str | None = None  # where a text cut to the platform's length can be read whole


@dataclass(frozen=True, slots=True)
class IncidentName:
    """How a message names its incident: `ref` "#42", `label` "#42 checkout"."""

    short_id: int
    subject: str  # the service, else the title

    @property
    def ref(self) -> str:
        return f"#{self.short_id}"

    @property
    def label(self) -> str:
        return f"#{self.short_id} {self.subject}"


@dataclass(frozen=True, slots=True)
class StormLine:
    """One incident as a storm digest names it."""

    incident_id: str
    short_id: int
    title: str
    service: str | None
    severity: str
    status: str

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"


@dataclass(slots=True)
class StormDigest:
    """One message standing for many new incidents in a channel: how many, over how long,
    listed by service and severity, edited as they arrive and resolve; a button (or `#42`
    typed in the channel) opens an incident's own thread."""

    incidents: list[StormLine]  # in the order they arrived
    seconds: float  # from the first to the latest
    over: bool = False  # the storm has ended: open incidents have their own threads now
    part: int = 1  # a storm whose message reached its edit limit goes on in another one
    buttons: list[Button] = field(default_factory=list)

    @property
    def headline(self) -> str:
        n, s = len(self.incidents), max(round(self.seconds), 1)
        what = "Storm over" if self.over else "Storm"
        more = f" (part {self.part})" if self.part > 1 else ""
        return f"⚡ {what}: {n} incident{'s' if n != 1 else ''} in {s} s{more}"

    @property
    def tally(self) -> str:
        open_ = sum(not i.resolved for i in self.incidents)
        return f"{open_} open · {len(self.incidents) - open_} resolved"


def reply_to_json(r: Reply) -> dict[str, Any]:
    return {
        "text": r.text,
        "kind": r.kind,
        "diagnosis": r.diagnosis.model_dump(mode="json") if r.diagnosis else None,
        "buttons": [
            {"action_id": b.action_id, "label": b.label, "value": b.value, "style": b.style}
            for b in r.buttons
        ],
        "link": list(r.link) if r.link else None,
    }


def reply_from_json(data: dict[str, Any]) -> Reply:
    return Reply(
        text=data["text"],
        kind=data.get("kind", "info"),
        diagnosis=Diagnosis.model_validate(data["diagnosis"]) if data.get("diagnosis") else None,
        buttons=[Button(**b) for b in data.get("buttons", [])],
        link=tuple(data["link"]) if data.get("link") else None,
    )
