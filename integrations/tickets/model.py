"""What a ticketing system returns (`JiraUser`, `TicketRef`) and the protocol the bot files through.

Every method raises `integrations.errors.IntegrationError` subclasses on failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class JiraUser:
    """A person Jira can assign issues to; `id` is the accountId (Cloud) or username (Server)."""

    id: str
    display_name: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class TicketRef:
    """A filed issue: its key (`OPS-42`) and the page people open."""

    key: str
    url: str


class TicketSystem(Protocol):
    async def find_users(self, query: str) -> list[JiraUser]:
        """People whose name, username or email matches `query`."""
        ...

    async def create_issue(
        self,
        summary: str,
        description: str,
        *,
        labels: list[str],
        priority: str | None,
        assignee: JiraUser | None,
        idempotency_key: str,
    ) -> TicketRef:
        """File an issue once per `idempotency_key`; a repeat returns the first one."""
        ...

    async def add_comment(self, key: str, body: str) -> None:
        """Comment on an existing issue."""
        ...

    async def attach(self, key: str, filename: str, content: bytes) -> None:
        """Attach a file (e.g. the postmortem Markdown) to an existing issue."""
        ...

    async def get_issue(self, key: str) -> TicketRef:
        """An existing issue by key."""
        ...
