"""HTTP executor: calls a deploy tool's endpoint (Rundeck, Jenkins, AWX) with placeholders
substituted in the URL and the JSON body."""

from __future__ import annotations

import time
from typing import Any

import httpx

from integrations.actions.base import (
    ActionParams,
    ActionResult,
    PlaceholderError,
    finish,
    one_line,
    render,
    retry_after_s,
)
from integrations.errors import PermanentError, RateLimited, TransientError


def _render_body(value: Any, params: ActionParams) -> Any:
    """Render every string in a JSON body; a value that is exactly `{replicas}` or `{delta}`
    becomes a number."""
    if isinstance(value, dict):
        return {key: _render_body(item, params) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_body(item, params) for item in value]
    if not isinstance(value, str):
        return value
    rendered = render(value, params)
    return int(rendered) if value in ("{replicas}", "{delta}") else rendered


class HttpExecutor:
    """Sends one HTTP request per action: 2xx is success, 3xx/4xx a failure the endpoint reported,
    429/5xx and connection errors `TransientError`."""

    def __init__(
        self,
        url: str,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        timeout_s: float = 60.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url
        self._method = method.upper()
        self._headers = dict(headers or {})
        self._body = body
        self._timeout_s = timeout_s
        self._client = client

    async def _send(self, url: str, body: Any) -> httpx.Response:
        if self._client is not None:
            return await self._client.request(
                self._method, url, headers=self._headers, json=body, timeout=self._timeout_s
            )
        async with httpx.AsyncClient(timeout=self._timeout_s) as client:
            return await client.request(self._method, url, headers=self._headers, json=body)

    async def run(self, params: ActionParams) -> ActionResult:
        started = time.monotonic()
        try:
            url = render(self._url, params)
            body = None if self._body is None else _render_body(self._body, params)
        except PlaceholderError as exc:
            return finish(params, started, ok=False, outcome=f"refused: {exc}")
        try:
            host = httpx.URL(url).host
            response = await self._send(url, body)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentError(f"bad action URL: {exc}") from exc
        except httpx.HTTPError as exc:
            raise TransientError(f"{self._method} {host} failed: {exc!r}") from exc
        status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        if response.status_code == 429:
            raise RateLimited(
                f"{host} answered {status}", retry_after_s(response.headers.get("retry-after"))
            )
        if response.status_code >= 500:
            raise TransientError(f"{host} answered {status}: {one_line(response.text)}")
        ok = response.is_success
        outcome = f"{status} from {host}" if ok else f"failed: {status} from {host}"
        if not ok and response.text.strip():
            outcome += f": {one_line(response.text)}"
        return finish(params, started, ok=ok, outcome=outcome, output=response.text)
