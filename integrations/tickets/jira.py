"""Jira Cloud and Server/Data Center through the `jira` client, run in worker threads.

Client errors become `integrations.errors` at each call; messages never carry the API token.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from io import BytesIO
from typing import Literal, TypeVar

import requests
from jira import JIRA
from jira.exceptions import JIRAError

from integrations.errors import IntegrationError, PermanentError, RateLimited, TransientError
from integrations.tickets.model import JiraUser, TicketRef

T = TypeVar("T")

_USER_SEARCH_LIMIT = 10
_LABEL_PREFIX = "opsbot-"
# The bot's outbox retries with backoff and honours RateLimited; the client's own retries
# would sleep up to a minute inside a worker thread where nobody can cancel them.
_CLIENT_RETRIES = 0


class JiraTickets:
    """Files and updates Jira issues; the client connects (asking serverInfo) on first use."""

    def __init__(
        self,
        url: str,
        username: str,
        api_token: str,
        project: str,
        issue_type: str = "Task",
        deployment: Literal["cloud", "server"] = "cloud",
        timeout_s: float = 15,
    ) -> None:
        self._url = url.rstrip("/")
        self._auth = (username, api_token)
        self._project = project
        self._issue_type = issue_type
        self._deployment = deployment
        self._timeout_s = timeout_s
        self._client: JIRA | None = None
        self._connect_lock = threading.Lock()

    async def find_users(self, query: str) -> list[JiraUser]:
        def search(client: JIRA) -> list[JiraUser]:
            if self._cloud:
                found = client.search_users(query=query, maxResults=_USER_SEARCH_LIMIT)
            else:
                found = client.search_users(user=query, maxResults=_USER_SEARCH_LIMIT)
            return [
                JiraUser(
                    id=u.raw["accountId"] if self._cloud else u.raw["name"],
                    display_name=u.raw.get("displayName", ""),
                    email=u.raw.get("emailAddress"),
                )
                for u in found
            ]

        return await self._call(f"the user search for {query!r}", search)

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
        """File the issue unless one with this key's label exists (a retry after a lost answer).

        Two concurrent calls with the same key can still both file; the outbox runs one at a time.
        """
        marker = _LABEL_PREFIX + re.sub(r"[^A-Za-z0-9_.:-]+", "-", idempotency_key)
        fields: dict[str, object] = {
            "project": self._project,
            "issuetype": self._issue_type,
            "summary": summary,
            "description": description,
            "labels": [*(re.sub(r"\s+", "-", label.strip()) for label in labels), marker],
        }
        if priority:
            fields["priority"] = {"name": priority}
        if assignee:
            fields["assignee"] = {"accountId" if self._cloud else "name": assignee.id}

        def create(client: JIRA) -> TicketRef:
            jql = f'project = "{self._project}" AND labels = "{marker}"'
            existing = client.search_issues(jql, maxResults=1, fields="key")
            if existing:
                return self._ref(existing[0].key)
            try:
                issue = client.create_issue(fields=fields, prefetch=False)
            except KeyError as exc:  # raised by the client's issue-type lookup
                raise PermanentError(
                    f"Jira refused the issue: project {self._project} has no issue type "
                    f"{self._issue_type!r}"
                ) from exc
            return self._ref(issue.key)

        return await self._call("the issue", create)

    async def add_comment(self, key: str, body: str) -> None:
        await self._call(f"the comment on {key}", lambda client: client.add_comment(key, body))

    async def attach(self, key: str, filename: str, content: bytes) -> None:
        # The client seeks and streams a file object; BytesIO is one.
        await self._call(
            f"the attachment {filename!r} on {key}",
            lambda client: client.add_attachment(key, BytesIO(content), filename=filename),
        )

    async def get_issue(self, key: str) -> TicketRef:
        return await self._call(
            f"the lookup of {key}", lambda client: self._ref(client.issue(key, fields="key").key)
        )

    async def aclose(self) -> None:
        """Close the HTTP session; a later call connects again."""
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    @property
    def _cloud(self) -> bool:
        return self._deployment == "cloud"

    def _ref(self, key: str) -> TicketRef:
        return TicketRef(key=key, url=f"{self._url}/browse/{key}")

    async def _call(self, what: str, operation: Callable[[JIRA], T]) -> T:
        return await asyncio.to_thread(self._run, what, operation)

    def _run(self, what: str, operation: Callable[[JIRA], T]) -> T:
        try:
            return operation(self._connected())
        except JIRAError as exc:
            raise _translate(exc, what) from exc
        except requests.JSONDecodeError as exc:  # a 200 that is not JSON: not a Jira REST API
            raise PermanentError(
                f"{self._url} answered {what} with something other than JSON; check jira.url"
            ) from exc
        except requests.Timeout as exc:
            raise TransientError(
                f"Jira at {self._url} did not answer within {self._timeout_s:g} s"
            ) from exc
        except requests.RequestException as exc:
            raise TransientError(
                f"Jira at {self._url} is unreachable ({type(exc).__name__})"
            ) from exc

    def _connected(self) -> JIRA:
        with self._connect_lock:
            if self._client is None:
                try:
                    client = JIRA(
                        server=self._url,
                        basic_auth=self._auth,
                        timeout=self._timeout_s,
                        max_retries=_CLIENT_RETRIES,
                        get_server_info=True,
                    )
                except KeyError as exc:  # serverInfo answered JSON without versionNumbers
                    raise PermanentError(
                        f"{self._url} does not answer like Jira; check jira.url"
                    ) from exc
                # The client picks Cloud (accountId) or Server (name) handling from serverInfo.
                if (client.deploymentType == "Cloud") != self._cloud:
                    client.close()
                    raise PermanentError(
                        f"Jira at {self._url} reports deploymentType "
                        f"{client.deploymentType or 'Server'!r} but jira.deployment is "
                        f"{self._deployment!r}"
                    )
                self._client = client
            return self._client


def _translate(exc: JIRAError, what: str) -> IntegrationError:
    """One client error as ours; only status, headers and Jira's own messages are used."""
    status = exc.status_code
    if status == 401:
        return PermanentError("Jira rejected the credentials (401)")
    if status == 403:  # bad credentials, or a user who lacks the permission Jira names
        details = _explain(exc)
        return PermanentError(
            "Jira rejected the credentials (403)" + (f": {details}" if details else "")
        )
    if status is not None and (status == 429 or status >= 500):
        headers = exc.response.headers if exc.response is not None else {}
        retry_after = _retry_after(headers.get("Retry-After"))
        if retry_after is not None:
            return RateLimited(f"Jira asked to retry {what} later ({status})", retry_after)
        return TransientError(f"Jira failed {what} ({status})")
    if status is None:
        return PermanentError(f"Jira client failed {what}: {exc.text or 'no details'}")
    details = _explain(exc)
    return PermanentError(
        f"Jira refused {what}: {details}" if details else f"Jira refused {what} ({status})"
    )


def _explain(exc: JIRAError) -> str:
    """Jira's `errorMessages` and per-field `errors` in plain words."""
    if exc.response is None:
        return ""
    try:
        body = exc.response.json()
    except ValueError:
        return exc.response.text.strip()[:300]
    if not isinstance(body, dict):
        return ""
    parts = [str(m) for m in body.get("errorMessages") or []]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{name}: {message}" for name, message in errors.items()]
    return "; ".join(parts)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
