"""HTTP health probes, and the HTTP plumbing the other observability clients share.

`fetch`/`raise_for_status`/`json_body` translate httpx failures into `integrations.errors`;
`HttpHealthSource` is the one client that reports a failure as data instead of raising.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar, cast

import httpx

from integrations.errors import IntegrationError, PermanentError, RateLimited, TransientError
from integrations.observability.model import HealthResult

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_HEALTH_TIMEOUT_S = 5.0
DEFAULT_RETRY_AFTER_S = 1.0
"""Used when a rate-limited answer says nothing about when to come back."""
ERROR_BODY_CHARS = 300
"""How much of an error response an exception message quotes."""
HEALTH_BODY_CHARS = 500

T = TypeVar("T")
Params = Mapping[str, str | int | float]


@asynccontextmanager
async def http_client(client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The shared client when one was given, else a fresh one that is closed on exit."""
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient() as own:
        yield own


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    what: str,
    timeout_s: float,
    params: Params | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """GET `url` (its own query string kept, `params` merged in); transport failures raise."""
    try:
        target = httpx.URL(url).copy_merge_params(dict(params or {}))
        return await client.get(target, headers=headers, timeout=timeout_s, follow_redirects=True)
    except httpx.TimeoutException as exc:
        raise TransientError(f"{what}: no answer from {url} within {timeout_s:g}s") from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise PermanentError(f"{what}: {url!r} is not a usable http(s) URL: {exc}") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"{what}: cannot reach {url}: {exc or type(exc).__name__}") from exc


async def get(
    client: httpx.AsyncClient,
    url: str,
    *,
    what: str,
    timeout_s: float,
    params: Params | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """`fetch`, then `raise_for_status`."""
    response = await fetch(
        client, url, what=what, timeout_s=timeout_s, params=params, headers=headers
    )
    raise_for_status(response, what)
    return response


def raise_for_status(response: httpx.Response, what: str) -> None:
    """Translate a non-2xx answer: 429 → RateLimited, 5xx → Transient, other 4xx → Permanent."""
    status = response.status_code
    if status < 400:
        return
    url = response.request.url.copy_with(query=None)
    detail = response.text[:ERROR_BODY_CHARS]
    if _is_rate_limited(response):
        raise RateLimited(f"{what}: {url} is rate limiting us ({status})", retry_after(response))
    if status >= 500:
        raise TransientError(f"{what}: {url} answered {status}: {detail}")
    if status in (401, 403):
        raise PermanentError(
            f"{what}: {url} refused our credentials ({status}); check the token: {detail}"
        )
    if status == 404:
        raise PermanentError(f"{what}: {url} not found (404); check the URL and names")
    raise PermanentError(f"{what}: {url} answered {status}: {detail}")


def _is_rate_limited(response: httpx.Response) -> bool:
    # GitHub signals its rate limits with 403 plus these headers, not only with 429.
    return response.status_code == 429 or (
        response.status_code == 403
        and (
            "retry-after" in response.headers
            or response.headers.get("x-ratelimit-remaining") == "0"
        )
    )


def retry_after(response: httpx.Response) -> float:
    """Seconds to wait, from `Retry-After` (seconds or HTTP date) or `X-RateLimit-Reset`."""
    header = response.headers.get("retry-after", "").strip()
    if header.replace(".", "", 1).isdigit():
        return float(header)
    if header:
        try:
            return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_S
    reset = response.headers.get("x-ratelimit-reset")
    if reset and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return DEFAULT_RETRY_AFTER_S


def json_body(response: httpx.Response, what: str) -> Any:
    """The decoded JSON body; a body that is not JSON is a PermanentError."""
    try:
        return response.json()
    except ValueError as exc:
        raise PermanentError(
            f"{what}: expected JSON, got {response.headers.get('content-type', 'no type')}: "
            f"{response.text[:ERROR_BODY_CHARS]!r}"
        ) from exc


def json_list(response: httpx.Response, what: str) -> list[Any]:
    """The decoded body, which must be a JSON list."""
    body = json_body(response, what)
    if not isinstance(body, list):
        raise PermanentError(f"{what}: expected a JSON list, got {type(body).__name__}")
    return body


def minutes_ago(iso: str, now: float) -> float:
    """Minutes from an ISO 8601 timestamp ("2024-05-01T12:00:00Z") to `now`, to 0.1."""
    return round((now - datetime.fromisoformat(iso).timestamp()) / 60, 1)


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn a response of an unexpected shape (missing key, wrong type) into a PermanentError."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise PermanentError(f"{what}: unexpected response shape: {exc!r}") from exc


async def gather_all(*aws: Awaitable[T]) -> list[T]:
    """Run concurrently and wait for all; if any failed, raise the first failure."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast("list[T]", results)


class HttpHealthSource:
    """GET a health URL; an unreachable service is `status=None` with the error as body."""

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
    ) -> None:
        self._url = url
        self._client = client
        self._timeout_s = timeout_s

    async def check(self) -> HealthResult:
        async with http_client(self._client) as client:
            started = time.perf_counter()
            try:
                response = await fetch(
                    client, self._url, what="health check", timeout_s=self._timeout_s
                )
            except IntegrationError as exc:
                return HealthResult(status=None, body=str(exc))
            latency_ms = (time.perf_counter() - started) * 1000
        return HealthResult(
            status=response.status_code,
            body=response.text[:HEALTH_BODY_CHARS],
            latency_ms=round(latency_ms, 1),
        )
