"""Jira tickets from chat through the real bot and the real `jira` client against a fake Jira:
what gets filed, who it is assigned to, one ticket per ask, and what the thread hears when
Jira fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import pytest

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.jira_server import FakeJira, FakeUser

Deployment = Literal["cloud", "server"]

OOM = "java.lang.OutOfMemoryError: Java heap space"
PUBLIC_URL = "https://opsbot.example.com"
UNREACHABLE = "Jira is unreachable, will retry"
CREATE = "/rest/api/2/issue"


def jira_settings(fake_jira: FakeJira, **extra: Any) -> dict[str, Any]:
    return {
        "url": fake_jira.url,
        "username": fake_jira.username,
        "api_token": fake_jira.api_token,
        "project": "OPS",
        "deployment": "cloud" if fake_jira.deployment == "Cloud" else "server",
        **extra,
    }


@asynccontextmanager
async def ticket_bot(
    bot_config: Callable[..., Config], fake_jira: FakeJira, **overrides: Any
) -> AsyncIterator[RunningBot]:
    """The bot filing into the fake Jira, with a quick outbox backoff and a public URL."""
    settings: dict[str, Any] = {
        "jira": jira_settings(fake_jira),
        "http": {"public_url": PUBLIC_URL},
        "outbox": {"base_backoff_s": 0.05, "max_backoff_s": 0.2},
        **overrides,
    }
    async with run_bot(bot_config(**settings)) as bot:
        yield bot


def seed(fake_jira: FakeJira, deployment: Deployment, *users: FakeUser) -> None:
    fake_jira.set_deployment("Cloud" if deployment == "cloud" else "Server")
    fake_jira.users.extend(users)


def jira_id(fake_jira: FakeJira, user: FakeUser) -> str:
    """The id this deployment assigns by: accountId on Cloud, user name on Server."""
    return user.account_id if fake_jira.deployment == "Cloud" else user.name


def assignee_field(fake_jira: FakeJira, user: FakeUser) -> dict[str, str]:
    key = "accountId" if fake_jira.deployment == "Cloud" else "name"
    return {key: jira_id(fake_jira, user)}


async def open_incident(bot: RunningBot, severity: str = "critical") -> str:
    """A checkout alert with an OOM in its logs, posted and diagnosed (offline)."""
    resp = await bot.client.post(
        "/webhooks/generic",
        json={
            "incident_id": "checkout-oom",
            "service": "checkout",
            "alert_type": "HighErrorRate",
            "severity": severity,
            "message": "checkout 5xx above 5%",
            "logs": ["GET /cart 500", OOM, "GET /cart 500"],
        },
    )
    assert resp.status_code == 200, resp.text
    (incident_id,) = resp.json()["incidents"]

    async def diagnosed() -> bool:
        return bool((await detail(bot, incident_id))["diagnoses"])

    await bot.wait_for(diagnosed, what="the diagnosis")
    return incident_id


async def detail(bot: RunningBot, incident_id: str) -> dict[str, Any]:
    resp = await bot.client.get(f"/api/incidents/{incident_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


async def say(bot: RunningBot, incident_id: str, text: str) -> None:
    resp = await bot.client.post(f"/api/incidents/{incident_id}/messages", json={"text": text})
    assert resp.status_code == 202, resp.text


async def click(bot: RunningBot, incident_id: str, action_id: str, value: str = "") -> None:
    resp = await bot.client.post(
        f"/api/incidents/{incident_id}/buttons", json={"action_id": action_id, "value": value}
    )
    assert resp.status_code == 202, resp.text


async def bot_said(bot: RunningBot, incident_id: str) -> list[dict[str, Any]]:
    return [m for m in (await detail(bot, incident_id))["messages"] if m["author"] == "opsbot"]


async def wait_said(bot: RunningBot, incident_id: str, needle: str) -> dict[str, Any]:
    """The bot's first message in the thread that contains `needle`, once it is there."""

    async def found() -> dict[str, Any] | None:
        return next((m for m in await bot_said(bot, incident_id) if needle in m["text"]), None)

    return await bot.wait_for(found, what=f"the bot to say {needle!r}")


async def said_count(bot: RunningBot, incident_id: str, needle: str) -> int:
    return sum(needle in m["text"] for m in await bot_said(bot, incident_id))


async def said_either(bot: RunningBot, incident_id: str, *needles: str) -> bool:
    texts = [m["text"] for m in await bot_said(bot, incident_id)]
    return any(n in text for n in needles for text in texts)


async def created(bot: RunningBot, incident_id: str, n: int = 1) -> list[dict[str, Any]]:
    """The incident's created tickets (GET /api/incidents/{id}), once there are `n`."""

    async def done() -> list[dict[str, Any]] | None:
        found = [tk for tk in (await detail(bot, incident_id))["tickets"] if tk["key"]]
        return found if len(found) >= n else None

    return await bot.wait_for(done, what=f"{n} created ticket(s)")


async def idle(bot: RunningBot) -> dict[str, int]:
    """Deliver everything due, then the outbox's pending and failed counts from /stats (its
    worker's lag and health are there too)."""
    await bot.settle()
    outbox = (await bot.client.get("/stats")).json()["outbox"]
    return {"pending": outbox["pending"], "failed": outbox["failed"]}


@pytest.mark.parametrize("deployment", ["cloud", "server"])
async def test_file_a_jira_for_someone_in_the_directory(
    bot_config: Callable[..., Config], fake_jira: FakeJira, deployment: Deployment
) -> None:
    ravi = FakeUser("ravi.kumar", "Ravi Kumar", "ravi@example.com")
    seed(fake_jira, deployment, ravi, FakeUser("ravi.shankar", "Ravi Shankar"))
    people = [{"name": "Ravi Kumar", "aliases": ["ravi"], "jira": jira_id(fake_jira, ravi)}]
    async with ticket_bot(
        bot_config, fake_jira, jira=jira_settings(fake_jira, issue_type="Bug"), people=people
    ) as bot:
        incident_id = await open_incident(bot)
        await say(bot, incident_id, "file a Jira for Ravi")

        (ticket,) = await created(bot, incident_id)
        (issue,) = fake_jira.issues
        link = f"{fake_jira.url}/browse/{issue.key}"
        assert ticket | {"created_at": None} == {
            "key": issue.key,
            "url": link,
            "state": "created",
            "assignee": "Ravi Kumar",
            "requested_by": "console",
            "created_at": None,
            "error": None,
        }
        said = await wait_said(bot, incident_id, issue.key)
        assert "assigned to Ravi Kumar" in said["text"] and link in said["text"]
        assert said["link"] == [issue.key, link]

        # The directory's id is used as is: two Ravis in Jira do not make the bot ask.
        assert not fake_jira.calls_to("GET", "/rest/api/2/user/search")
        fields = issue.fields
        assert fields["project"] == {"id": fake_jira.project_id}
        assert fields["issuetype"] == {"id": "10002"}  # Bug, from jira.issue_type
        assert fields["assignee"] == assignee_field(fake_jira, ravi)
        assert fields["priority"] == {"name": "Highest"}  # critical
        assert fields["labels"][:2] == ["incident", "checkout"]
        assert fields["summary"] == "[#1] checkout 5xx above 5%"
        description = fields["description"]
        assert "memory leak" in description  # the diagnosis
        assert OOM in description  # its evidence
        assert "Triggered: checkout 5xx above 5%" in description  # the timeline
        assert f"{PUBLIC_URL}/#/incidents/{incident_id}" in description  # back to the thread


async def test_create_jira_task_and_assign_to(
    bot_config: Callable[..., Config], fake_jira: FakeJira
) -> None:
    ravi = FakeUser("ravi.kumar", "Ravi Kumar")
    seed(fake_jira, "cloud", ravi)
    people = [{"name": "Ravi Kumar", "aliases": ["ravi"], "jira": ravi.account_id}]
    async with ticket_bot(bot_config, fake_jira, people=people) as bot:
        incident_id = await open_incident(bot)
        await say(bot, incident_id, "create jira task and assign to Ravi")
        await created(bot, incident_id)
        (issue,) = fake_jira.issues
        assert issue.fields["assignee"] == {"accountId": ravi.account_id}
        assert issue.fields["issuetype"] == {"id": "10001"}  # Task, the default


async def test_a_priority_asked_for_wins_over_severity(
    bot_config: Callable[..., Config], fake_jira: FakeJira
) -> None:
    async with ticket_bot(bot_config, fake_jira) as bot:
        incident_id = await open_incident(bot, severity="critical")
        await say(bot, incident_id, "open a ticket, priority high")
        await created(bot, incident_id)
        (issue,) = fake_jira.issues
        assert issue.fields["priority"] == {"name": "High"}
        assert "assignee" not in issue.fields
        said = await wait_said(bot, incident_id, issue.key)
        assert "unassigned" not in said["text"]  # nobody was named, so nothing to explain


@pytest.mark.parametrize("deployment", ["cloud", "server"])
async def test_someone_outside_the_directory_is_found_by_jira_user_search(
    bot_config: Callable[..., Config], fake_jira: FakeJira, deployment: Deployment
) -> None:
    priya = FakeUser("priya.sharma", "Priya Sharma", "priya@example.com")
    seed(fake_jira, deployment, priya, FakeUser("sam.lee", "Sam Lee"))
    async with ticket_bot(bot_config, fake_jira) as bot:
        incident_id = await open_incident(bot)
        await say(bot, incident_id, "file a jira for Priya")
        await created(bot, incident_id)
        (issue,) = fake_jira.issues
        assert issue.fields["assignee"] == assignee_field(fake_jira, priya)
        said = await wait_said(bot, incident_id, issue.key)
        assert "assigned to Priya Sharma" in said["text"]
        (search,) = fake_jira.calls_to("GET", "/rest/api/2/user/search")
        assert search.query.get("query" if deployment == "cloud" else "username") == "priya"


@pytest.mark.parametrize("deployment", ["cloud", "server"])
async def test_several_matches_ask_which_one_and_the_click_files_it(
    bot_config: Callable[..., Config], fake_jira: FakeJira, deployment: Deployment
) -> None:
    lee, patel = FakeUser("sam.lee", "Sam Lee"), FakeUser("sam.patel", "Sam Patel")
    seed(fake_jira, deployment, lee, patel)
    async with ticket_bot(bot_config, fake_jira) as bot:
        incident_id = await open_incident(bot)
        await say(bot, incident_id, "file a jira for Sam")

        question = await wait_said(bot, incident_id, "which one?")
        choices = {b["label"]: b["action_id"] for b in question["buttons"]}
        assert choices == {
            "Sam Lee": f"assign:{jira_id(fake_jira, lee)}",
            "Sam Patel": f"assign:{jira_id(fake_jira, patel)}",
        }
        assert await idle(bot) == {"pending": 0, "failed": 0}
        assert fake_jira.issues == []  # nothing is filed until someone picks

        await click(bot, incident_id, choices["Sam Patel"])
        (ticket,) = await created(bot, incident_id)
        (issue,) = fake_jira.issues
        assert issue.fields["assignee"] == assignee_field(fake_jira, patel)
        assert ticket["assignee"] == "Sam Patel"
        said = await wait_said(bot, incident_id, issue.key)
        assert "assigned to Sam Patel" in said["text"]

        # A late click on the other choice files nothing more.
        await click(bot, incident_id, choices["Sam Lee"])
        await wait_said(bot, incident_id, "already has")
        assert len(fake_jira.issues) == 1


async def test_nobody_matching_files_it_unassigned_and_says_so(
    bot_config: Callable[..., Config], fake_jira: FakeJira
) -> None:
    seed(fake_jira, "cloud", FakeUser("sam.lee", "Sam Lee"))
    async with ticket_bot(bot_config, fake_jira) as bot:
        incident_id = await open_incident(bot)
        await say(bot, incident_id, "file a jira for Quentin")
        await created(bot, incident_id)
        (issue,) = fake_jira.issues
        assert "assignee" not in issue.fields
        said = await wait_said(bot, incident_id, issue.key)
        assert "unassigned" in said["text"] and "quentin" in said["text"].lower()


async def test_create_ticket_button_twice_files_one_and_another_files_a_second(
    bot_config: Callable[..., Config], fake_jira: FakeJira
) -> None:
    async with ticket_bot(bot_config, fake_jira) as bot:
        incident_id = await open_incident(bot)
        await click(bot, incident_id, "ticket", incident_id)
        await click(bot, incident_id, "ticket", incident_id)
        (ticket,) = await created(bot, incident_id)
        # The second click lands while the first is being filed (or just after).
        await bot.wait_for(
            lambda: said_either(bot, incident_id, "already being filed", "already has"),
            what="the second click's answer",
        )
        assert await idle(bot) == {"pending": 0, "failed": 0}
        assert [i.key for i in fake_jira.issues] == [ticket["key"]]

        await click(bot, incident_id, "ticket", incident_id)
        answer = await wait_said(bot, incident_id, "already has")
        assert ticket["key"] in answer["text"]
        assert len(fake_jira.issues) == 1

        await say(bot, incident_id, "file another ticket")
        first, second = await created(bot, incident_id, 2)
        assert first["key"] != second["key"]
        assert [i.key for i in fake_jira.issues] == [first["key"], second["key"]]


@pytest.mark.parametrize(
    ("headers", "path", "effective"),
    [
        ({}, None, False),  # Jira down: its next three answers are 503
        ({"Retry-After": "1"}, None, False),
        ({}, CREATE, True),  # the issue was created but the answer was lost
    ],
    ids=["503", "503-retry-after", "503-after-create"],
)
async def test_jira_unavailable_then_back_is_announced_once_and_files_once(
    bot_config: Callable[..., Config],
    fake_jira: FakeJira,
    headers: dict[str, str],
    path: str | None,
    effective: bool,
) -> None:
    async with ticket_bot(bot_config, fake_jira) as bot:
        incident_id = await open_incident(bot)
        fake_jira.fail_next(503, 3 if path is None else 1, headers, path=path, effective=effective)
        await say(bot, incident_id, "open a ticket")
        (ticket,) = await created(bot, incident_id)
        said = await wait_said(bot, incident_id, f"Created {ticket['key']}")
        messages = [m["text"] for m in await bot_said(bot, incident_id)]
        assert sum(UNREACHABLE in m for m in messages) == 1
        assert messages.index(next(m for m in messages if UNREACHABLE in m)) < messages.index(
            said["text"]
        )
        assert len(fake_jira.issues) == 1
        assert ticket["error"] is None
        assert await idle(bot) == {"pending": 0, "failed": 0}


async def test_jira_down_for_good_gives_up_and_says_so(
    bot_config: Callable[..., Config], fake_jira: FakeJira
) -> None:
    outbox = {"base_backoff_s": 0.05, "max_backoff_s": 0.1, "max_attempts": 3}
    async with ticket_bot(bot_config, fake_jira, outbox=outbox) as bot:
        incident_id = await open_incident(bot)
        # Each attempt fails at its first request (the client's serverInfo): three in all.
        fake_jira.fail_next(503, 3)
        await say(bot, incident_id, "open a ticket")
        said = await wait_said(bot, incident_id, "Could not file the ticket")
        assert "Jira stayed unreachable after 3 attempts" in said["text"]
        assert await said_count(bot, incident_id, UNREACHABLE) == 1
        (ticket,) = (await detail(bot, incident_id))["tickets"]
        assert ticket["state"] == "failed"
        assert await idle(bot) == {"pending": 0, "failed": 0}

        await say(bot, incident_id, "open a ticket")
        await created(bot, incident_id)
        assert len(fake_jira.issues) == 1


async def test_a_refusal_is_explained_and_not_retried(
    bot_config: Callable[..., Config], fake_jira: FakeJira
) -> None:
    async with ticket_bot(bot_config, fake_jira) as bot:
        incident_id = await open_incident(bot)
        fake_jira.fail_next(
            400,
            body={"errorMessages": [], "errors": {"priority": "Priority name 'P0' is not valid"}},
            path=CREATE,
        )
        await say(bot, incident_id, "open a ticket")
        said = await wait_said(bot, incident_id, "Could not file the ticket")
        assert "priority: Priority name 'P0' is not valid" in said["text"]
        assert await idle(bot) == {"pending": 0, "failed": 0}
        assert len(fake_jira.calls_to("POST", CREATE)) == 1
        (ticket,) = (await detail(bot, incident_id))["tickets"]
        assert ticket["state"] == "failed" and "Priority name" in ticket["error"]
        assert fake_jira.issues == []

        # A failed ask does not block the next one.
        await say(bot, incident_id, "open a ticket")
        await created(bot, incident_id)
        assert len(fake_jira.issues) == 1


@pytest.mark.parametrize(
    ("setting", "explained"),
    [
        ({"project": "NOPE"}, "No project could be found with key 'NOPE'"),
        ({"issue_type": "Epic"}, "project OPS has no issue type 'Epic'"),
    ],
    ids=["project", "issue-type"],
)
async def test_a_configuration_jira_cannot_accept_is_explained(
    bot_config: Callable[..., Config],
    fake_jira: FakeJira,
    setting: dict[str, str],
    explained: str,
) -> None:
    async with ticket_bot(bot_config, fake_jira, jira=jira_settings(fake_jira, **setting)) as bot:
        incident_id = await open_incident(bot)
        await say(bot, incident_id, "open a ticket")
        said = await wait_said(bot, incident_id, "Could not file the ticket")
        assert explained in said["text"]
        assert await idle(bot) == {"pending": 0, "failed": 0}
        assert fake_jira.issues == []
