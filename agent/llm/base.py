"""The provider protocol: one chat completion, with optional tools and JSON mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.types import TokenUsage

Message = dict[str, Any]
"""An OpenAI-style chat message ({"role": ..., "content": ..., "tool_calls": ...})."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model sent it


@dataclass(slots=True)
class Completion:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    model: str = ""
    provider: str = ""


class ChatProvider(Protocol):
    name: str
    model: str

    async def complete(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        json_mode: bool = False,
    ) -> Completion:
        """One completion; raises `agent.errors.ProviderError` on any failure."""
        ...
