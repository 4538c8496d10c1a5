"""JiraTickets with the real `jira` client against the fake Jira REST server, Cloud and Server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from integrations.errors import PermanentError, RateLimited, TransientError
from integrations.tickets import JiraTickets, JiraUser, TicketRef
from tests.fakes.jira_server import FakeAttachment, FakeComment, FakeJira, FakeUser

RAVI = FakeUser(name="ravi.kumar", display_name="Ravi Kumar", email="ravi@example.com")
ANNA = FakeUser(name="anna.lee", display_name="Anna Lee", email="anna@example.com")


@pytest.fixture(params=["cloud", "server"])
async def jira(request: pytest.FixtureRequest, fake_jira: FakeJira) -> AsyncIterator[JiraTickets]:
    """JiraTickets configured for the deployment the fake Jira reports."""
    fake_jira.set_deployment("Cloud" if request.param == "cloud" else "Server")
    fake_jira.users.extend([RAVI, ANNA])
    tickets = JiraTickets(
        fake_jira.url,
        fake_jira.username,
        fake_jira.api_token,
        "OPS",
        deployment=request.param,
        timeout_s=5,
    )
    yield tickets
    await tickets.aclose()


def _cloud(fake_jira: FakeJira) -> bool:
    return fake_jira.deployment == "Cloud"


async def _file(
    jira: JiraTickets,
    key: str = "incident-1-ticket",
    *,
    priority: str | None = "High",
    assignee: JiraUser | None = None,
) -> TicketRef:
    return await jira.create_issue(
        "checkout is down",
        "h2. Diagnosis\nOOM",
        labels=["opsbot", "service checkout"],
        priority=priority,
        assignee=assignee,
        idempotency_key=key,
    )


async def test_user_search_finds_people_by_deployment_identity(
    jira: JiraTickets, fake_jira: FakeJira
) -> None:
    users = await jira.find_users("ravi")

    expected_id = RAVI.account_id if _cloud(fake_jira) else RAVI.name
    assert users == [JiraUser(id=expected_id, display_name="Ravi Kumar", email="ravi@example.com")]
    (search,) = fake_jira.calls_to("GET", "/rest/api/2/user/search")
    assert search.query.get("query" if _cloud(fake_jira) else "username") == "ravi"


async def test_create_sends_project_type_priority_labels_and_assignee(
    jira: JiraTickets, fake_jira: FakeJira
) -> None:
    (ravi,) = await jira.find_users("ravi@example.com")

    ref = await _file(jira, assignee=ravi)

    assert ref == TicketRef(key="OPS-1", url=f"{fake_jira.url}/browse/OPS-1")
    (issue,) = fake_jira.issues
    assert issue.fields["project"] == {"id": "10000"}
    assert issue.fields["issuetype"] == {"id": "10001"}
    assert issue.fields["summary"] == "checkout is down"
    assert issue.fields["description"] == "h2. Diagnosis\nOOM"
    assert issue.fields["priority"] == {"name": "High"}
    assert issue.fields["labels"] == ["opsbot", "service-checkout", "opsbot-incident-1-ticket"]
    if _cloud(fake_jira):
        assert issue.fields["assignee"] == {"accountId": RAVI.account_id}
    else:
        assert issue.fields["assignee"] == {"name": "ravi.kumar"}
    assert await jira.get_issue("OPS-1") == ref


async def test_repeated_create_with_same_key_files_one_issue(
    jira: JiraTickets, fake_jira: FakeJira
) -> None:
    first = await _file(jira)
    again = await _file(jira)
    other = await _file(jira, key="incident-2-ticket")

    assert again == first
    assert other.key == "OPS-2"
    assert len(fake_jira.issues) == 2
    assert len(fake_jira.calls_to("POST", "/rest/api/2/issue")) == 2


async def test_retry_after_a_lost_answer_returns_the_issue_jira_already_made(
    jira: JiraTickets, fake_jira: FakeJira
) -> None:
    fake_jira.fail_next(504, path="/rest/api/2/issue", effective=True)

    with pytest.raises(TransientError):
        await _file(jira)
    ref = await _file(jira)

    assert ref.key == "OPS-1"
    assert len(fake_jira.issues) == 1


async def test_503_with_retry_after_is_rate_limited_without_client_retries(
    jira: JiraTickets, fake_jira: FakeJira
) -> None:
    fake_jira.fail_next(503, headers={"Retry-After": "7"}, path="/rest/api/2/issue")

    with pytest.raises(RateLimited) as caught:
        await _file(jira)

    assert caught.value.retry_after == 7
    assert len(fake_jira.calls_to("POST", "/rest/api/2/issue")) == 1
    assert fake_jira.issues == []


async def test_503_without_retry_after_is_transient(jira: JiraTickets, fake_jira: FakeJira) -> None:
    fake_jira.fail_next(503)

    with pytest.raises(TransientError) as caught:
        await jira.find_users("ravi")

    assert not isinstance(caught.value, RateLimited)
    assert "503" in str(caught.value)
    assert await jira.find_users("anna") != []


async def test_refused_connection_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tickets = JiraTickets(f"http://127.0.0.1:{port}", "u", "secret-token", "OPS", timeout_s=2)

    with pytest.raises(TransientError, match="unreachable"):
        await tickets.get_issue("OPS-1")


async def test_400_explains_the_refused_fields(jira: JiraTickets) -> None:
    with pytest.raises(PermanentError) as caught:
        await _file(jira, priority="Urgent")

    assert (
        str(caught.value) == "Jira refused the issue: priority: Priority name 'Urgent' is not valid"
    )


async def test_injected_400_with_error_messages_is_explained(
    jira: JiraTickets, fake_jira: FakeJira
) -> None:
    fake_jira.fail_next(
        400,
        body={"errorMessages": ["Comments are disabled"], "errors": {"body": "Too long"}},
        path="/rest/api/2/issue/OPS-1/comment",
    )
    await _file(jira)

    with pytest.raises(PermanentError, match=r"comment on OPS-1: Comments are disabled; body: Too"):
        await jira.add_comment("OPS-1", "x")


async def test_bad_credentials_are_permanent_and_never_echo_the_token(
    fake_jira: FakeJira,
) -> None:
    token = "wrong-token-4f9c"
    tickets = JiraTickets(fake_jira.url, fake_jira.username, token, "OPS")

    with pytest.raises(PermanentError) as caught:
        await tickets.find_users("ravi")

    assert str(caught.value) == "Jira rejected the credentials (401)"
    assert token not in str(caught.value.__cause__)


async def test_403_names_the_missing_permission(jira: JiraTickets, fake_jira: FakeJira) -> None:
    fake_jira.fail_next(
        403,
        body={"errorMessages": ["You do not have permission to create issues."], "errors": {}},
        path="/rest/api/2/issue",
    )

    with pytest.raises(PermanentError) as caught:
        await _file(jira)

    assert str(caught.value) == (
        "Jira rejected the credentials (403): You do not have permission to create issues."
    )


async def test_unknown_issue_is_permanent(jira: JiraTickets) -> None:
    with pytest.raises(PermanentError, match="OPS-99: Issue does not exist"):
        await jira.get_issue("OPS-99")


async def test_deployment_mismatch_names_the_setting(fake_jira: FakeJira) -> None:
    fake_jira.set_deployment("Server")
    tickets = JiraTickets(fake_jira.url, fake_jira.username, fake_jira.api_token, "OPS")

    with pytest.raises(PermanentError, match=r"jira\.deployment"):
        await tickets.find_users("ravi")


async def test_comment_and_attachment_arrive(jira: JiraTickets, fake_jira: FakeJira) -> None:
    ref = await _file(jira)
    postmortem = "# Postmortem\n\nRoot cause: heap exhausted — fixed by restart ✅\n".encode()

    await jira.add_comment(ref.key, "Restarted checkout; error rate back to 0.1%")
    await jira.attach(ref.key, "postmortem-42.md", postmortem)

    assert fake_jira.comments == [
        FakeComment("OPS-1", "Restarted checkout; error rate back to 0.1%")
    ]
    assert fake_jira.attachments == [FakeAttachment("OPS-1", "postmortem-42.md", postmortem)]
