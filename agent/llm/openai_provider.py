"""Any OpenAI-compatible chat API (OpenAI, Azure-style proxies, Ollama, llama.cpp, vLLM).

Every client failure becomes a `ProviderError` with a short reason; the chain falls back on it.
"""

from __future__ import annotations

from typing import Any, cast

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from agent.errors import ProviderError
from agent.llm.base import Completion, Message, ToolCall
from agent.types import TokenUsage


class OpenAIProvider:
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float,
        json_mode: bool = True,
        max_retries: int = 0,
        max_tokens: int | None = 2048,
    ) -> None:
        self.name = name
        self.model = model
        self._json_mode = json_mode
        self._max_tokens = max_tokens
        self._timeout_s = timeout_s
        # Local servers take no key, but the client insists on one.
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "unused",
            timeout=timeout_s,
            max_retries=max_retries,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        json_mode: bool = False,
    ) -> Completion:
        extra: dict[str, Any] = {}
        if tools:
            extra["tools"] = tools
        if json_mode and self._json_mode:
            extra["response_format"] = {"type": "json_object"}
        # A small local model can ramble to the end of its context (minutes of tokens); an
        # answer here is a few hundred tokens, so a cap costs a good model nothing.
        if self._max_tokens:
            extra["max_tokens"] = self._max_tokens
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=cast("list[ChatCompletionMessageParam]", messages),
                **extra,
            )
        except openai.APITimeoutError as exc:
            raise ProviderError(f"timeout after {self._timeout_s:g}s") from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(f"connection failed ({_cause(exc)})") from exc
        except openai.RateLimitError as exc:
            retry_after = exc.response.headers.get("retry-after")
            hint = f", retry after {retry_after}s" if retry_after else ""
            raise ProviderError(f"429 rate limited{hint}") from exc
        except openai.APIStatusError as exc:
            raise ProviderError(str(exc.status_code)) from exc
        except (openai.APIError, ValueError) as exc:
            raise ProviderError(f"unreadable response ({type(exc).__name__})") from exc
        return self._completion(response)

    def _completion(self, response: object) -> Completion:
        # Without strict validation the client returns plain text for a non-JSON body and
        # leaves missing fields unset, so check the shape here.
        if not isinstance(response, ChatCompletion) or not getattr(response, "choices", None):
            raise ProviderError("malformed response (no choices)")
        try:
            message = response.choices[0].message
            calls = [
                ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
                for call in message.tool_calls or []
                if call.type == "function"
            ]
            usage = response.usage
            tokens = TokenUsage(
                prompt=usage.prompt_tokens if usage else 0,
                completion=usage.completion_tokens if usage else 0,
            )
            return Completion(
                content=message.content,
                tool_calls=calls,
                usage=tokens,
                model=getattr(response, "model", None) or self.model,
                provider=self.name,
            )
        except AttributeError as exc:
            raise ProviderError(f"malformed response (missing {exc.name})") from exc


def _cause(exc: BaseException) -> str:
    """The innermost cause's message: 'All connection attempts failed', 'Connection refused'."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or type(exc).__name__
