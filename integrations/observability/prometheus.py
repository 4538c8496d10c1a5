"""Prometheus HTTP API client: named range queries for the agent, instant queries for checks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from integrations.errors import PermanentError, TransientError
from integrations.observability.health import (
    DEFAULT_TIMEOUT_S,
    ERROR_BODY_CHARS,
    Params,
    fetch,
    gather_all,
    http_client,
    raise_for_status,
    reading,
)
from integrations.observability.model import Point

QUERY_RANGE_PATH = "/api/v1/query_range"
QUERY_PATH = "/api/v1/query"
_TRANSIENT_ERROR_TYPES = frozenset({"timeout", "canceled", "unavailable"})

Labels = dict[str, str]


class PrometheusSource:
    """Named PromQL queries over Prometheus's HTTP API.

    A query that yields several series is reduced to the one whose last value is highest
    (the worst instance, for error rates and latencies); summing would invent a number no
    instance has. NaN samples (e.g. 0/0 ratios) are dropped.
    """

    def __init__(
        self,
        url: str,
        queries: Mapping[str, str],
        client: httpx.AsyncClient | None = None,
        now: Callable[[], float] = time.time,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._url = url.rstrip("/")
        self._queries = dict(queries)
        self._client = client
        self._now = now
        self._headers = dict(headers or {})
        self._timeout_s = timeout_s

    async def series(self, window_s: int, step_s: int) -> dict[str, list[Point]]:
        end = self._now()
        names = list(self._queries)
        async with http_client(self._client) as client:
            results = await gather_all(
                *(
                    self._api(
                        client,
                        QUERY_RANGE_PATH,
                        f"Prometheus query {name}",
                        {
                            "query": self._queries[name],
                            "start": end - window_s,
                            "end": end,
                            "step": step_s,
                        },
                    )
                    for name in names
                )
            )
        series: dict[str, list[Point]] = {}
        for name, data in zip(names, results, strict=True):
            with reading(f"Prometheus query {name}"):
                candidates = [
                    points for result in data["result"] if (points := _points(result["values"]))
                ]
            series[name] = max(candidates, key=lambda points: points[-1][1], default=[])
        return series

    async def instant(self, query: str) -> list[tuple[Labels, float]]:
        """Each series of `query` now, with its labels; a scalar result has empty labels."""
        what = f"Prometheus instant query {query}"
        async with http_client(self._client) as client:
            data = await self._api(client, QUERY_PATH, what, {"query": query, "time": self._now()})
        with reading(what):
            if data["resultType"] in ("scalar", "string"):
                return [({}, float(data["result"][1]))]
            return [
                (dict(result["metric"]), float(result["value"][1])) for result in data["result"]
            ]

    async def _api(self, client: httpx.AsyncClient, path: str, what: str, params: Params) -> Any:
        response = await fetch(
            client,
            self._url + path,
            what=what,
            timeout_s=self._timeout_s,
            params=params,
            headers=self._headers,
        )
        return _data(response, what)


def _data(response: httpx.Response, what: str) -> Any:
    """The `data` of a Prometheus API answer; its `status: error` envelope becomes an error."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("status") == "error":
        error_type = body.get("errorType", "error")
        message = f"{what}: Prometheus {error_type}: {body.get('error', '')}"
        if error_type in _TRANSIENT_ERROR_TYPES or response.status_code >= 500:
            raise TransientError(message)
        raise PermanentError(message)
    raise_for_status(response, what)
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise PermanentError(
            f"{what}: not a Prometheus API answer: {response.text[:ERROR_BODY_CHARS]!r}"
        )
    return body["data"]


def _points(values: list[list[Any]]) -> list[Point]:
    points = [(float(t), float(v)) for t, v in values]
    return [(t, v) for t, v in points if not math.isnan(v)]


def expr_from_generator_url(url: str) -> str | None:
    """The PromQL of an alert, from Prometheus's generatorURL (`/graph?g0.expr=...`)."""
    values = parse_qs(urlsplit(url).query).get("g0.expr")
    return values[0] if values else None
