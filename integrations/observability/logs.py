"""Log sources: the newest lines of a service's log from a file, an HTTP tail, Loki or CloudWatch.

Each implements `LogSource.tail(limit)`: the newest `limit` lines, oldest first.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
from botocore.client import BaseClient

from integrations.errors import PermanentError, TransientError
from integrations.observability.cloudwatch import (
    DEFAULT_AWS_MAX_ATTEMPTS,
    DEFAULT_AWS_TIMEOUT_S,
    AwsService,
)
from integrations.observability.health import (
    DEFAULT_TIMEOUT_S,
    get,
    http_client,
    json_body,
    reading,
)

DEFAULT_CHUNK_BYTES = 64 * 1024
DEFAULT_MAX_TAIL_BYTES = 8 * 1024 * 1024
"""A file tail never reads more than this from the end, however long its lines."""
DEFAULT_WINDOW_S = 3600
"""How far back Loki and CloudWatch Logs look for the newest lines."""
LOKI_QUERY_RANGE_PATH = "/loki/api/v1/query_range"
_NS = 1_000_000_000


class FileLogSource:
    """The last lines of a local file, read backwards from its end in a worker thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_bytes: int = DEFAULT_MAX_TAIL_BYTES,
    ) -> None:
        self._path = Path(path)
        self._chunk_bytes = chunk_bytes
        self._max_bytes = max_bytes

    async def tail(self, limit: int) -> list[str]:
        if limit <= 0:
            return []
        try:
            return await asyncio.to_thread(self._tail, limit)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise PermanentError(f"log file {self._path}: {exc.strerror}") from exc
        except OSError as exc:
            raise TransientError(f"log file {self._path}: {exc}") from exc

    def _tail(self, limit: int) -> list[str]:
        with self._path.open("rb") as f:
            end = start = f.seek(0, os.SEEK_END)
            chunks: list[bytes] = []
            newlines = 0
            # limit + 1 newlines: the last `limit` lines are then complete whether or not
            # the file ends with a newline.
            while start > 0 and newlines <= limit and end - start < self._max_bytes:
                size = min(self._chunk_bytes, start)
                start -= size
                f.seek(start)
                chunk = f.read(size)
                newlines += chunk.count(b"\n")
                chunks.append(chunk)
        text = b"".join(reversed(chunks)).decode("utf-8", errors="replace")
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        if start > 0:
            lines = lines[1:]  # begins mid-line
        return [line.removesuffix("\r") for line in lines[-limit:]]


class HttpLogSource:
    """`GET url?lines=N`, answered as text/plain, a JSON list of strings or `{"lines": [...]}`."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._url = url
        self._headers = dict(headers or {})
        self._client = client
        self._timeout_s = timeout_s

    async def tail(self, limit: int) -> list[str]:
        if limit <= 0:
            return []
        what = f"log tail {self._url}"
        async with http_client(self._client) as client:
            response = await get(
                client,
                self._url,
                what=what,
                timeout_s=self._timeout_s,
                params={"lines": limit},
                headers=self._headers,
            )
        if "json" in response.headers.get("content-type", ""):
            lines = _json_lines(json_body(response, what), what)
        else:
            lines = response.text.splitlines()
        return lines[-limit:]  # the endpoint may ignore `lines`


def _json_lines(body: Any, what: str) -> list[str]:
    if isinstance(body, dict) and "lines" in body:
        body = body["lines"]
    if not isinstance(body, list):
        raise PermanentError(f'{what}: expected a JSON list of lines or {{"lines": [...]}}')
    # Structured entries are kept whole rather than refused: the agent can read JSON lines.
    return [item if isinstance(item, str) else json.dumps(item) for item in body]


class LokiLogSource:
    """A LogQL log query over Loki's `query_range`, newest lines across all streams."""

    def __init__(
        self,
        url: str,
        query: str,
        client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        window_s: int = DEFAULT_WINDOW_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._url = url.rstrip("/") + LOKI_QUERY_RANGE_PATH
        self._query = query
        self._client = client
        self._headers = dict(headers or {})  # e.g. X-Scope-OrgID, Authorization
        self._window_s = window_s
        self._timeout_s = timeout_s
        self._now = now

    async def tail(self, limit: int) -> list[str]:
        if limit <= 0:
            return []
        what = f"Loki query {self._query}"
        end_ns = int(self._now() * _NS)
        async with http_client(self._client) as client:
            response = await get(
                client,
                self._url,
                what=what,
                timeout_s=self._timeout_s,
                headers=self._headers,
                params={
                    "query": self._query,
                    "limit": limit,
                    "direction": "backward",
                    "start": end_ns - self._window_s * _NS,
                    "end": end_ns,
                },
            )
        body = json_body(response, what)
        with reading(what):
            data = body["data"]
            if data["resultType"] != "streams":
                raise PermanentError(
                    f"{what}: is a metric query ({data['resultType']}), not a log query"
                )
            # Entries are [ns, line] or, with structured metadata, [ns, line, {...}].
            entries = sorted(
                (int(value[0]), str(value[1]))
                for stream in data["result"]
                for value in stream["values"]
            )
        return [line for _, line in entries[-limit:]]


class CloudWatchLogSource:
    """`filter_log_events` over a log group's recent window; the newest `limit` events."""

    def __init__(
        self,
        log_group: str,
        region: str,
        filter_pattern: str = "",
        endpoint_url: str | None = None,
        window_s: int = DEFAULT_WINDOW_S,
        timeout_s: float = DEFAULT_AWS_TIMEOUT_S,
        max_attempts: int = DEFAULT_AWS_MAX_ATTEMPTS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._log_group = log_group
        self._filter_pattern = filter_pattern
        self._window_s = window_s
        self._aws = AwsService("logs", region, endpoint_url, timeout_s, max_attempts)
        self._now = now

    async def tail(self, limit: int) -> list[str]:
        if limit <= 0:
            return []
        what = f"CloudWatch Logs {self._log_group}"
        end_ms = int(self._now() * 1000)
        arguments: dict[str, Any] = {
            "logGroupName": self._log_group,
            "startTime": end_ms - self._window_s * 1000,
            "endTime": end_ms,
        }
        if self._filter_pattern:
            arguments["filterPattern"] = self._filter_pattern

        def newest(client: BaseClient) -> list[tuple[int, int, str]]:
            pages = client.get_paginator("filter_log_events").paginate(**arguments)
            events: Iterator[tuple[int, int, str]] = (
                (event["timestamp"], order, event["message"])
                for order, event in enumerate(e for page in pages for e in page["events"])
            )
            # Pages come oldest first; keep only the newest `limit` while paging through.
            with reading(what):
                return heapq.nlargest(limit, events)

        events = await self._aws.call(what, newest)
        return [message.rstrip("\n") for _, _, message in sorted(events)]
