"""Sentry's most frequent unresolved issues of a project, via its REST API (SaaS or self-hosted)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from integrations.observability.health import (
    DEFAULT_TIMEOUT_S,
    get,
    http_client,
    json_list,
    minutes_ago,
    reading,
)
from integrations.observability.model import ErrorIssue

SENTRY_API_URL = "https://sentry.io/api/0"
DEFAULT_STATS_PERIOD = "24h"


class SentryErrorSource:
    """Unresolved issues of `org_project` ("org/project"), most frequent first."""

    def __init__(
        self,
        org_project: str,
        api_url: str = SENTRY_API_URL,
        token: str = "",
        client: httpx.AsyncClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        stats_period: str = DEFAULT_STATS_PERIOD,
        now: Callable[[], float] = time.time,
    ) -> None:
        org, sep, project = org_project.partition("/")
        if not (org and sep and project):
            raise ValueError(f"Sentry project must be 'org/project', got {org_project!r}")
        self._what = f"Sentry {org_project} issues"
        self._url = f"{api_url.rstrip('/')}/projects/{org}/{project}/issues/"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client
        self._timeout_s = timeout_s
        self._stats_period = stats_period
        self._now = now

    async def top_issues(self, limit: int) -> list[ErrorIssue]:
        if limit <= 0:
            return []
        async with http_client(self._client) as client:
            response = await get(
                client,
                self._url,
                what=self._what,
                timeout_s=self._timeout_s,
                headers=self._headers,
                params={
                    "query": "is:unresolved",
                    "statsPeriod": self._stats_period,
                    "sort": "freq",
                    "limit": limit,
                },
            )
        body = json_list(response, self._what)
        now = self._now()
        with reading(self._what):
            return [
                ErrorIssue(
                    title=item["title"],
                    count=int(item["count"]),
                    first_seen_minutes_ago=(
                        minutes_ago(item["firstSeen"], now) if item.get("firstSeen") else None
                    ),
                    url=item.get("permalink"),
                )
                for item in body[:limit]
            ]
