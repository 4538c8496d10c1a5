"""Providers tried in order, each behind a circuit breaker; one error when none answers."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from agent.errors import ProviderError
from agent.llm.base import ChatProvider, Completion, Message
from agent.llm.breaker import CircuitBreaker
from agent.llm.openai_provider import OpenAIProvider
from agent.types import TokenUsage

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """One OpenAI-compatible provider (the agent's view of `llm.providers[]` in the config)."""

    name: str
    base_url: str = "https://api.openai.com/v1"
    api_key: str = ""
    model: str = "gpt-4o-mini"
    timeout_s: float = 30.0
    json_mode: bool = True
    max_tokens: int | None = 2048


class ProviderChain:
    """`complete` asks each provider in turn; `chaos` makes every call fail without I/O."""

    def __init__(
        self,
        providers: Sequence[ChatProvider],
        breaker_failures: int = 3,
        breaker_cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.providers = list(providers)
        self.chaos = False
        # every token any provider answered with, an answer later set aside included
        self.usage = TokenUsage()
        self._breakers = {
            p.name: CircuitBreaker(breaker_failures, breaker_cooldown_s, clock)
            for p in self.providers
        }

    @classmethod
    def from_config(
        cls,
        providers: Sequence[ProviderSettings],
        *,
        breaker_failures: int = 3,
        breaker_cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> ProviderChain:
        return cls(
            [
                OpenAIProvider(
                    name=s.name,
                    base_url=s.base_url,
                    api_key=s.api_key,
                    model=s.model,
                    timeout_s=s.timeout_s,
                    json_mode=s.json_mode,
                    max_tokens=s.max_tokens,
                )
                for s in providers
            ],
            breaker_failures=breaker_failures,
            breaker_cooldown_s=breaker_cooldown_s,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the HTTP clients of the providers this chain built."""
        for provider in self.providers:
            if isinstance(provider, OpenAIProvider):
                await provider.aclose()

    def index_of(self, provider_name: str) -> int:
        """The provider's position in the chain (0 = primary); -1 when unknown."""
        return next((i for i, p in enumerate(self.providers) if p.name == provider_name), -1)

    def breaker(self, provider_name: str) -> CircuitBreaker:
        return self._breakers[provider_name]

    async def complete(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        json_mode: bool = False,
    ) -> Completion:
        if self.chaos:
            raise ProviderError("chaos mode")
        reasons: list[str] = []
        for provider in self.providers:
            breaker = self._breakers[provider.name]
            if not breaker.allow():
                reasons.append(f"{provider.name}: circuit open")
                continue
            try:
                completion = await provider.complete(messages, tools=tools, json_mode=json_mode)
            except ProviderError as exc:
                breaker.record_failure()
                reasons.append(f"{provider.name}: {exc}")
                log.warning("llm provider failed", provider=provider.name, reason=str(exc))
                continue
            breaker.record_success()
            completion.provider = provider.name
            self.usage = self.usage + completion.usage
            return completion
        raise ProviderError(
            "all providers failed: " + ("; ".join(reasons) or "no providers configured")
        )
