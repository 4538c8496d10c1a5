"""What changed in a GitHub repository: deployments, merged pull requests and commits."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from integrations.observability.health import (
    DEFAULT_TIMEOUT_S,
    gather_all,
    get,
    http_client,
    json_list,
    minutes_ago,
    reading,
)
from integrations.observability.model import Deploy

GITHUB_API_URL = "https://api.github.com"
GITHUB_API_VERSION = "2022-11-28"
DEFAULT_PER_PAGE = 50
SHORT_SHA = 7
# When one sha shows up several ways, the most telling one is kept.
_KIND_RANK = {"deployment": 0, "pull_request": 1, "commit": 2}


class GitHubDeploySource:
    """Deployments, merged PRs and commits of `repo` ("org/name"), newest first, one per sha.

    Each list is read from its first page only (`per_page` items), which covers the
    minutes-to-hours windows an incident asks about.
    """

    def __init__(
        self,
        repo: str,
        api_url: str = GITHUB_API_URL,
        token: str = "",
        client: httpx.AsyncClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        per_page: int = DEFAULT_PER_PAGE,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._base = f"{api_url.rstrip('/')}/repos/{repo}"
        self._headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client = client
        self._timeout_s = timeout_s
        self._per_page = per_page
        self._now = now

    async def recent(self, since_minutes: int) -> list[Deploy]:
        now = self._now()
        since = now - since_minutes * 60
        since_iso = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        async with http_client(self._client) as client:
            commits, pulls, deployments = await gather_all(
                self._list(client, "commits", {"since": since_iso}),
                self._list(
                    client, "pulls", {"state": "closed", "sort": "updated", "direction": "desc"}
                ),
                self._list(client, "deployments", {}),
            )
        found: list[Deploy] = []
        with reading(f"GitHub {self._repo} commits"):
            found += (_commit(c, now) for c in commits)
        with reading(f"GitHub {self._repo} pull requests"):
            found += (_pull(p, now) for p in pulls if p.get("merged_at"))
        with reading(f"GitHub {self._repo} deployments"):
            found += (_deployment(d, now) for d in deployments)
        in_window = [d for d in found if d.minutes_ago <= since_minutes]
        unique: dict[str, Deploy] = {}
        for deploy in sorted(in_window, key=lambda d: (_KIND_RANK[d.kind], d.minutes_ago)):
            unique.setdefault(deploy.sha, deploy)
        return sorted(unique.values(), key=lambda d: d.minutes_ago)

    async def _list(
        self, client: httpx.AsyncClient, what: str, params: dict[str, str]
    ) -> list[Any]:
        label = f"GitHub {self._repo} {what}"
        response = await get(
            client,
            f"{self._base}/{what}",
            what=label,
            timeout_s=self._timeout_s,
            params={**params, "per_page": self._per_page},
            headers=self._headers,
        )
        return json_list(response, label)


def _commit(item: dict[str, Any], now: float) -> Deploy:
    commit = item["commit"]
    when = (commit.get("committer") or commit["author"])["date"]
    author = item["author"]["login"] if item.get("author") else commit["author"]["name"]
    return Deploy(
        sha=item["sha"][:SHORT_SHA],
        message=_first_line(commit["message"]),
        author=author,
        minutes_ago=minutes_ago(when, now),
        kind="commit",
    )


def _pull(item: dict[str, Any], now: float) -> Deploy:
    sha = item.get("merge_commit_sha") or item["head"]["sha"]
    return Deploy(
        sha=sha[:SHORT_SHA],
        message=f"{_first_line(item['title'])} (#{item['number']})",
        author=item["user"]["login"],
        minutes_ago=minutes_ago(item["merged_at"], now),
        kind="pull_request",
    )


def _deployment(item: dict[str, Any], now: float) -> Deploy:
    what = _first_line(item.get("description") or "") or f"deploy {item['ref']}"
    return Deploy(
        sha=item["sha"][:SHORT_SHA],
        message=f"{item['environment']}: {what}",
        author=(item.get("creator") or {}).get("login", ""),
        minutes_ago=minutes_ago(item["created_at"], now),
        kind="deployment",
    )


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()
