"""Every policy path through the real bot, as the on-call engineer sees it in the thread and
the audit log: run at once, ask and approve (button or text), deny, refuse (allow-list,
unknown service, "everything", roles), two-person approval, expiry, and auto-remediation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot.app.config import Config
from bot.incidents import actions
from bot.incidents.models import utcnow
from bot.store import schema as t
from tests.e2e.test_actions_flow import (
    PEOPLE,
    action_rows,
    audit_log,
    bot_said,
    bot_says_next,
    console_says,
    detail,
    gated,
    lines_of,
    open_incident,
    prompts,
    python_action,
    service,
    slack_says,
)
from tests.fakes.action_servers import RecordingHttp
from tests.fakes.bot_server import RunningBot, run_bot

__all__ = ["gated"]  # a fixture from test_actions_flow, used here by name

VIC = {"name": "Vic Tor", "slack": "U0VIC", "roles": []}  # in the directory, no role
OOM_LOGS = [
    "2026-11-25T10:01:07Z ERROR java.lang.OutOfMemoryError: Java heap space",
    "2026-11-25T10:01:06Z WARN Pause Full GC (Allocation Failure) 3980M->3975M(4096M)",
]


def policy_config(
    bot_config: Callable[..., Config],
    gated: tuple[Path, Path, Path],
    approval: str = "approve",
    **overrides: Any,
) -> Config:
    """checkout (restart allowed, by the gated script with its gate open) and search."""
    script, gate, runs = gated
    gate.touch()
    restart = python_action(script, str(gate), str(runs))
    return bot_config(
        services={
            "checkout": service({"restart": restart}, approval=approval),
            "search": service({"scale_up": restart}),
        },
        people=[*PEOPLE, VIC],
        **overrides,
    )


async def ask_and_get_prompt(bot: RunningBot, incident_id: str, user_id: str) -> dict[str, Any]:
    await slack_says(bot, incident_id, user_id, "restart it")
    await bot.settle()
    (prompt,) = await prompts(bot, incident_id)
    return prompt


# ---- allowed ------------------------------------------------------------------------------


async def test_no_approval_needed_runs_at_once(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    cfg = policy_config(bot_config, gated, approval="none")
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot)
        await slack_says(bot, incident_id, "U0MIN", "restart it")
        said = await bot_says_next(bot, incident_id)

        assert said == [
            "▶️ Restarting checkout (asked by @min).",
            "✅ restart checkout: restarted\n⚠️ No health check configured",
        ]
        assert await prompts(bot, incident_id) == []
        assert len(lines_of(gated[2])) == 1
        assert await audit_log(bot, incident_id) == [
            ("U0MIN", "restart", "checkout", "approved", "no approval required for this service"),
            (
                "opsbot",
                "restart",
                "checkout",
                "succeeded",
                "restart checkout: restarted — no health check configured",
            ),
        ]


async def test_approval_is_asked_with_buttons_and_an_approver_clicks_approve(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    async with run_bot(policy_config(bot_config, gated)) as bot:
        incident_id = await open_incident(bot)
        prompt = await ask_and_get_prompt(bot, incident_id, "U0MIN")

        assert prompt["text"] == (
            "🔐 @min asks to restart checkout. Checkout requires approval: an approver can "
            'click Approve or reply "approve" within 15 min.'
        )
        (row,) = await action_rows(bot, incident_id)
        assert [(b["label"], b["action_id"]) for b in prompt["buttons"]] == [
            ("Approve", f"approve:{row['id']}"),
            ("Deny", f"deny:{row['id']}"),
        ]
        assert row["state"] == "pending_approval"
        assert lines_of(gated[2]) == []  # nothing runs before someone approves

        await slack_says(bot, incident_id, "U0RAVI", "Approve", button=f"approve:{row['id']}")
        said = await bot_says_next(bot, incident_id)

        assert said == [
            "✅ Approved by @ravi: restarting checkout…",
            "✅ restart checkout: restarted\n⚠️ No health check configured",
        ]
        assert len(lines_of(gated[2])) == 1
        (row,) = await action_rows(bot, incident_id)
        assert (row["state"], row["requested_by"], row["approved_by"]) == (
            "succeeded",
            "min",
            "ravi",
        )
        assert [(a, d, why) for a, _, _, d, why in await audit_log(bot, incident_id)] == [
            ("U0MIN", "pending_approval", "checkout requires approval"),
            ("U0RAVI", "approved", "by @ravi"),
            ("opsbot", "succeeded", "restart checkout: restarted — no health check configured"),
        ]


async def test_an_approver_can_approve_by_typing_approve(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    async with run_bot(policy_config(bot_config, gated)) as bot:
        incident_id = await open_incident(bot)
        await ask_and_get_prompt(bot, incident_id, "U0MIN")
        await slack_says(bot, incident_id, "U0ASHA", "restart it")
        (busy,) = await bot_says_next(bot, incident_id)
        assert busy.startswith(
            "⏳ Already waiting for approval to restart checkout (asked by @min "
        )
        assert busy.endswith(" s ago).")

        await slack_says(bot, incident_id, "U0ASHA", "approve")
        said = await bot_says_next(bot, incident_id)

        assert said[0] == "✅ Approved by @asha: restarting checkout…"
        assert len(lines_of(gated[2])) == 1
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["succeeded"]


async def test_deny_stops_it_and_a_new_request_asks_again(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    async with run_bot(policy_config(bot_config, gated)) as bot:
        incident_id = await open_incident(bot)
        prompt = await ask_and_get_prompt(bot, incident_id, "U0MIN")
        deny = prompt["buttons"][1]["action_id"]
        await slack_says(bot, incident_id, "U0RAVI", "Deny", button=deny)
        said = await bot_says_next(bot, incident_id)

        assert said == ["❌ Denied by @ravi: restart checkout will not run."]
        assert lines_of(gated[2]) == []
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["denied"]
        assert (await audit_log(bot, incident_id))[-1][3:] == ("denied", "by @ravi")

        await slack_says(bot, incident_id, "U0MIN", "restart it")
        await bot.settle()
        assert len(await prompts(bot, incident_id)) == 2


async def test_a_responder_who_is_not_an_approver_cannot_approve(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    async with run_bot(policy_config(bot_config, gated)) as bot:
        incident_id = await open_incident(bot)
        await ask_and_get_prompt(bot, incident_id, "U0RAVI")
        await slack_says(bot, incident_id, "U0MIN", "approve")
        said = await bot_says_next(bot, incident_id)

        assert said == ["🚫 @min is not an approver."]
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["pending_approval"]
        assert (await audit_log(bot, incident_id))[-1] == (
            "U0MIN",
            "restart",
            "checkout",
            "refused",
            "@min is not an approver",
        )


async def test_only_an_approver_or_the_requester_can_deny(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    async with run_bot(policy_config(bot_config, gated)) as bot:
        incident_id = await open_incident(bot)
        prompt = await ask_and_get_prompt(bot, incident_id, "U0MIN")
        deny = prompt["buttons"][1]["action_id"]
        await slack_says(bot, incident_id, "U0STRANGER", "Deny", button=deny)
        said = await bot_says_next(bot, incident_id)
        assert said == ["🚫 @U0STRANGER is neither an approver nor the requester."]
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["pending_approval"]

        await slack_says(bot, incident_id, "U0MIN", "deny")  # withdrawing one's own request
        said = await bot_says_next(bot, incident_id)
        assert said == ["❌ Denied by @min: restart checkout will not run."]
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["denied"]


async def test_a_request_waiting_while_the_allow_list_changed_is_not_run(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    """Asked under one configuration, approved (or queued) after a restart with another."""
    script, gate, runs = gated
    gate.touch()
    run = python_action(script, str(gate), str(runs))

    def config(allowed: str) -> Config:
        services = {s: service({allowed: run}, approval="approve") for s in ("checkout", "cart")}
        return bot_config(services=services, people=PEOPLE)

    def refusal(svc: str) -> str:
        return (
            f"🚫 Not running restart {svc}: restart is not allowed on {svc} (allowed: rollback); "
            "the configuration changed since it was asked."
        )

    async with run_bot(config("restart")) as bot:
        waiting = await open_incident(bot, "checkout")
        await ask_and_get_prompt(bot, waiting, "U0MIN")
        queued = await open_incident(bot, "cart")
        prompt = await ask_and_get_prompt(bot, queued, "U0MIN")
        await slack_says(bot, queued, "U0RAVI", "Approve", button=prompt["buttons"][0]["action_id"])
        await bot.runtime.worker.run_once()  # the approval is handled; its run is still queued
        assert [r["state"] for r in await action_rows(bot, queued)] == ["approved"]

    async with run_bot(config("rollback")) as bot:
        await slack_says(bot, waiting, "U0RAVI", "approve")
        assert await bot_says_next(bot, waiting) == [refusal("checkout")]
        assert refusal("cart") in await bot_said(bot, queued)  # the queued run refused itself
        for incident_id in (waiting, queued):
            assert [r["state"] for r in await action_rows(bot, incident_id)] == ["refused"]
            assert (await audit_log(bot, incident_id))[-1][0::3] == ("opsbot", "refused")
        assert lines_of(runs) == []


# ---- refused -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer", "target", "why"),
    [
        (
            "roll it back",
            "🚫 Not doing that: rollback is not allowed on checkout (allowed: restart).",
            "checkout",
            "rollback is not allowed on checkout (allowed: restart)",
        ),
        (
            "restart payments-v9",
            "🚫 There is no service called `payments-v9`. Services I know: checkout, search.",
            "payments-v9",
            "unknown service",
        ),
        (
            "restart everything",
            "🚫 I won't restart that: name one service. Services: checkout, search.",
            "*",
            "name one service",
        ),
    ],
)
async def test_refusals_say_why_and_what_exists(
    bot_config: Callable[..., Config],
    gated: tuple[Path, Path, Path],
    text: str,
    answer: str,
    target: str,
    why: str,
) -> None:
    async with run_bot(policy_config(bot_config, gated)) as bot:
        incident_id = await open_incident(bot)
        await slack_says(bot, incident_id, "U0RAVI", text)
        said = await bot_says_next(bot, incident_id)

        assert said == [answer]
        assert await action_rows(bot, incident_id) == []
        assert await prompts(bot, incident_id) == []
        (entry,) = await audit_log(bot, incident_id)
        assert entry[0] == "U0RAVI"
        assert entry[2:] == (target, "refused", why)


async def test_scaling_stays_within_the_services_replica_limits(
    bot_config: Callable[..., Config], recording_http: RecordingHttp
) -> None:
    scale = {"http": {"url": f"{recording_http.url}/scale", "body": {"replicas": "{replicas}"}}}
    checkout = service({"scale_up": scale}) | {"max_replicas": 12}
    async with run_bot(bot_config(services={"checkout": checkout}, people=PEOPLE)) as bot:
        incident_id = await open_incident(bot)
        await slack_says(bot, incident_id, "U0MIN", "scale it to 600")
        said = await bot_says_next(bot, incident_id)
        assert said == ["🚫 Not doing that: 600 replicas is outside checkout's limits (1 to 12)."]
        assert recording_http.calls("POST") == []

        await slack_says(bot, incident_id, "U0MIN", "scale it to 6")
        said = await bot_says_next(bot, incident_id)
        assert said[0] == "▶️ Scaling up checkout to 6 replicas (asked by @min)."
        (call,) = recording_http.calls("POST")
        assert call.json() == {"replicas": 6}


@pytest.mark.parametrize(
    ("user_id", "user_name", "mention"),
    [
        ("U0VIC", None, "@Vic Tor"),  # in the directory without a role
        ("U0STRANGER", None, "@U0STRANGER"),  # not in the directory
        ("U0STRANGER", "ravi", "@U0STRANGER"),  # ... however they call themselves
    ],
)
async def test_people_without_a_responder_role_cannot_ask(
    bot_config: Callable[..., Config],
    gated: tuple[Path, Path, Path],
    user_id: str,
    user_name: str | None,
    mention: str,
) -> None:
    async with run_bot(policy_config(bot_config, gated, approval="none")) as bot:
        incident_id = await open_incident(bot)
        await slack_says(bot, incident_id, user_id, "restart it", user_name=user_name)
        said = await bot_says_next(bot, incident_id)

        assert said == [
            f"🚫 Not doing that: {mention} has no responder role in the people directory."
        ]
        assert lines_of(gated[2]) == []
        assert await action_rows(bot, incident_id) == []
        (entry,) = await audit_log(bot, incident_id)
        assert (entry[0], entry[3]) == (user_id, "refused")


async def test_a_stranger_named_like_an_approver_cannot_click_approve(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    async with run_bot(policy_config(bot_config, gated)) as bot:
        incident_id = await open_incident(bot)
        prompt = await ask_and_get_prompt(bot, incident_id, "U0MIN")
        approve = prompt["buttons"][0]["action_id"]
        await slack_says(
            bot, incident_id, "U0STRANGER", "Approve", button=approve, user_name="ravi"
        )
        said = await bot_says_next(bot, incident_id)

        assert said == ["🚫 @U0STRANGER is not an approver."]
        assert lines_of(gated[2]) == []
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["pending_approval"]


# ---- two-person approval -------------------------------------------------------------------


async def test_two_person_approval_needs_someone_other_than_the_requester(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    async with run_bot(policy_config(bot_config, gated, approval="two_person")) as bot:
        incident_id = await open_incident(bot)
        prompt = await ask_and_get_prompt(bot, incident_id, "U0RAVI")
        assert "Checkout requires two-person approval" in prompt["text"]

        await slack_says(bot, incident_id, "U0RAVI", "approve")
        await slack_says(
            bot, incident_id, "U0RAVI", "Approve", button=prompt["buttons"][0]["action_id"]
        )
        said = await bot_says_next(bot, incident_id)
        assert (
            said == ["🚫 Two-person approval: someone other than the requester must approve."] * 2
        )
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["pending_approval"]
        assert lines_of(gated[2]) == []

        await slack_says(bot, incident_id, "U0ASHA", "approve")
        said = await bot_says_next(bot, incident_id)
        assert said[0] == "✅ Approved by @asha: restarting checkout…"
        assert len(lines_of(gated[2])) == 1
        decisions = [(a, d) for a, _, _, d, _ in await audit_log(bot, incident_id)]
        assert decisions == [
            ("U0RAVI", "pending_approval"),
            ("U0RAVI", "refused"),
            ("U0RAVI", "refused"),
            ("U0ASHA", "approved"),
            ("opsbot", "succeeded"),
        ]


async def resolve_by_source(bot: RunningBot, key: str) -> None:
    body = {"incident_id": key, "service": "checkout", "status": "resolved"}
    resp = await bot.client.post("/webhooks/generic", json=body)
    assert resp.json()["resolved"] == 1, resp.text
    await bot.settle()


async def test_a_request_waiting_in_another_incident_blocks_then_is_withdrawn_when_it_resolves(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    async with run_bot(policy_config(bot_config, gated)) as bot:
        first = await open_incident(bot, key="first")
        await ask_and_get_prompt(bot, first, "U0MIN")
        second = await open_incident(bot, key="second", message="checkout 5xx")
        await slack_says(bot, second, "U0RAVI", "restart it")
        said = await bot_says_next(bot, second)
        assert len(said) == 1
        assert said[0].startswith(
            "⏳ Already waiting for approval to restart checkout (asked by @min "
        )
        assert said[0].endswith(" s ago in #1).")

        await resolve_by_source(bot, "first")
        await slack_says(bot, second, "U0RAVI", "restart it")
        await bot.settle()
        (prompt,) = await prompts(bot, second)
        assert prompt["text"].startswith("🔐 @ravi asks to restart checkout.")
        (withdrawn,) = await action_rows(bot, first)
        assert (withdrawn["state"], withdrawn["outcome"]) == (
            "expired",
            "#1 was resolved before anyone approved",
        )
        assert lines_of(gated[2]) == []


async def test_approving_after_the_incident_resolved_does_not_run_it(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    async with run_bot(policy_config(bot_config, gated)) as bot:
        incident_id = await open_incident(bot, key="flap")
        prompt = await ask_and_get_prompt(bot, incident_id, "U0MIN")
        await resolve_by_source(bot, "flap")
        await slack_says(
            bot, incident_id, "U0RAVI", "Approve", button=prompt["buttons"][0]["action_id"]
        )
        said = await bot_says_next(bot, incident_id)

        assert said == [
            "⌛ #1 was resolved before anyone approved: restart checkout will not run. Ask again "
            "in a new incident if it is still needed."
        ]
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["expired"]
        assert lines_of(gated[2]) == []
        assert (await audit_log(bot, incident_id))[-1][3:] == (
            "expired",
            "#1 was resolved before anyone approved",
        )


# ---- expiry ----------------------------------------------------------------------------------


async def age_requests(bot: RunningBot, seconds: float) -> None:
    """Let time pass for the pending requests (no sleeping): they were asked that long ago."""
    async with bot.runtime.store.write() as conn:
        await conn.execute(
            update(t.actions)
            .where(t.actions.c.state == "pending_approval")
            .values(requested_at=utcnow() - timedelta(seconds=seconds))
        )


async def test_an_unanswered_request_expires_and_cannot_be_approved_afterwards(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    cfg = policy_config(bot_config, gated, policy={"approval_timeout_s": 300})
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot)
        prompt = await ask_and_get_prompt(bot, incident_id, "U0MIN")
        assert prompt["text"].endswith("within 5 min.")
        await age_requests(bot, 301)
        async with bot.runtime.store.write() as conn:  # what the scheduler's sweep does
            assert await actions.expire_approvals(conn, cfg) == 1
        said = await bot_says_next(bot, incident_id)
        assert said == ["⌛ The request to restart checkout expired without approval."]

        await console_says(bot, incident_id, "approve")
        await slack_says(
            bot, incident_id, "U0RAVI", "Approve", button=prompt["buttons"][0]["action_id"]
        )
        said = await bot_says_next(bot, incident_id)
        assert sorted(said) == [  # two threads: either may be answered first
            "Nothing is waiting for approval in this incident.",
            "That restart request is already expired.",
        ]
        assert lines_of(gated[2]) == []
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["expired"]
        assert (await audit_log(bot, incident_id))[-1][3:] == ("expired", "approval timed out")

        await slack_says(bot, incident_id, "U0MIN", "restart it")  # not "already restarting"
        await bot.settle()
        assert len(await prompts(bot, incident_id)) == 2


async def test_an_approval_arriving_after_the_window_is_refused_even_before_the_sweep(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    cfg = policy_config(bot_config, gated, policy={"approval_timeout_s": 60})
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot)
        prompt = await ask_and_get_prompt(bot, incident_id, "U0MIN")
        assert prompt["text"].endswith("within 60 s.")
        await age_requests(bot, 61)
        await slack_says(
            bot, incident_id, "U0RAVI", "Approve", button=prompt["buttons"][0]["action_id"]
        )
        said = await bot_says_next(bot, incident_id)

        assert said == ["⌛ The request to restart checkout expired; ask again if still needed."]
        assert lines_of(gated[2]) == []
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["expired"]
        assert (await audit_log(bot, incident_id))[-1][3] == "expired"


# ---- auto-remediation ------------------------------------------------------------------------


@pytest.mark.parametrize(("min_confidence", "acts"), [(0.95, False), (0.5, True)])
async def test_auto_remediation_acts_only_above_its_confidence_threshold(
    bot_config: Callable[..., Config],
    gated: tuple[Path, Path, Path],
    min_confidence: float,
    acts: bool,
) -> None:
    cfg = policy_config(
        bot_config,
        gated,
        approval="none",
        policy={"auto_remediate": {"enabled": True, "min_confidence": min_confidence}},
    )
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot, message="checkout pods restarting", logs=OOM_LOGS)
        inc = await detail(bot, incident_id)
        (diagnosis,) = inc["diagnoses"]
        assert (diagnosis["category"], diagnosis["proposed_action"]["action"]) == (
            "memory_leak",
            "restart",
        )
        assert 0.5 < diagnosis["confidence"] < 0.95
        said = await bot_said(bot, incident_id)
        rows = await action_rows(bot, incident_id)
        if not acts:
            assert rows == []
            assert not any("Auto-remediation" in s for s in said)
            assert lines_of(gated[2]) == []
            return
        confidence = f"{diagnosis['confidence']:.2f}"
        assert said[1:] == [
            f"🤖 Auto-remediation: restart proposed with confidence {confidence} (at least 0.50 "
            "acts on its own).\n▶️ Restarting checkout (asked by @opsbot).",
            "✅ restart checkout: restarted\n⚠️ No health check configured",
        ]
        (row,) = rows
        assert (row["state"], row["auto"], row["requested_by"]) == ("succeeded", True, "opsbot")
        assert len(lines_of(gated[2])) == 1
        assert (await audit_log(bot, incident_id))[0] == (
            "opsbot",
            "restart",
            "checkout",
            "approved",
            "auto-remediation; no approval required for this service",
        )


async def test_auto_remediation_acts_once_per_incident_not_on_every_diagnosis(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    cfg = policy_config(
        bot_config,
        gated,
        approval="none",
        policy={"auto_remediate": {"enabled": True, "min_confidence": 0.5}},
    )
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot, message="checkout pods restarting", logs=OOM_LOGS)
        assert len(lines_of(gated[2])) == 1
        await console_says(bot, incident_id, "diagnose again")
        said = await bot_says_next(bot, incident_id)

        assert said[-1].endswith(
            "\n🚫 Not doing that again on my own: auto-remediation already tried restart in #1; "
            "people decide the next step."
        )
        assert len(lines_of(gated[2])) == 1
        assert len(await action_rows(bot, incident_id)) == 1
        assert (await audit_log(bot, incident_id))[-1][0::3] == ("opsbot", "refused")

        await console_says(bot, incident_id, "restart it")  # a person still can
        await bot.settle()
        assert len(lines_of(gated[2])) == 2


async def test_auto_remediation_still_asks_when_the_service_needs_approval(
    bot_config: Callable[..., Config], gated: tuple[Path, Path, Path]
) -> None:
    cfg = policy_config(
        bot_config, gated, policy={"auto_remediate": {"enabled": True, "min_confidence": 0.5}}
    )
    async with run_bot(cfg) as bot:
        incident_id = await open_incident(bot, message="checkout pods restarting", logs=OOM_LOGS)

        (prompt,) = await prompts(bot, incident_id)
        assert prompt["text"].startswith("🤖 Auto-remediation: ")
        assert "\n🔐 @opsbot asks to restart checkout." in prompt["text"]
        assert [r["state"] for r in await action_rows(bot, incident_id)] == ["pending_approval"]
        assert lines_of(gated[2]) == []
