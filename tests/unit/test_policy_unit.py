"""Who may do what, decided without a bot: the allow-list, roles, approval modes, the people
directory's identities, and when a diagnosis may act on its own."""

from __future__ import annotations

from typing import Any

import pytest

from agent.types import ActionKind, Category, Diagnosis, ProposedAction
from bot.app.config import Config
from bot.chat.adapters.base import InboundMessage
from bot.incidents.policy import (
    Actor,
    Outcome,
    actor_for,
    allow_listed,
    auto_remediation,
    decide_request,
    may_approve,
    may_deny,
)

RAVI = {
    "name": "Ravi Kumar",
    "aliases": ["ravi"],
    "slack": "U0RAVI",
    "whatsapp": "+919800000001",
    "roles": ["responder", "approver"],
}
ASHA = {"name": "Asha Rao", "aliases": ["asha"], "slack": "U0ASHA", "roles": ["approver"]}
MIN = {"name": "Min Lee", "slack": "U0MIN", "roles": ["responder"]}
VISITOR = {"name": "Vic Tor", "slack": "U0VIC", "roles": []}


def config(approval: str = "approve", **overrides: Any) -> Config:
    data: dict[str, Any] = {
        "services": {
            "checkout": {
                "actions": {"restart": {"shell": ["true"]}, "rollback": {"shell": ["true"]}},
                "approval": approval,
            },
            "search": {"actions": {"scale_up": {"shell": ["true"]}}, "approval": "none"},
        },
        "people": [RAVI, ASHA, MIN, VISITOR],
        "policy": {"auto_remediate": {"enabled": True, "min_confidence": 0.75}},
    }
    data.update(overrides)
    return Config.model_validate(data)


def message(platform: str, user_id: str, user_name: str | None = None) -> InboundMessage:
    return InboundMessage(platform, "C1", user_id, "restart it", "e1", user_name=user_name)


def actor(cfg: Config, platform: str, user_id: str) -> Actor:
    return actor_for(cfg, message(platform, user_id))


# ---- who is speaking ------------------------------------------------------------------------


def test_people_are_found_by_the_id_their_platform_gives() -> None:
    cfg = config()
    on_slack = actor(cfg, "slack", "U0RAVI")
    on_whatsapp = actor(cfg, "whatsapp", "+919800000001")
    assert (on_slack.name, on_slack.mention, on_slack.roles) == (
        "ravi",
        "@ravi",
        frozenset({"responder", "approver"}),
    )
    assert on_whatsapp.person == on_slack.person
    assert actor(cfg, "slack", "U0MIN").name == "Min Lee"  # no alias: the full name


def test_a_stranger_calling_themselves_ravi_gets_no_roles() -> None:
    stranger = actor_for(config(), message("slack", "U0STRANGER", user_name="ravi"))
    assert (stranger.person, stranger.mention) == (None, "@U0STRANGER")
    assert stranger.roles == frozenset()


def test_unknown_users_get_the_configured_roles() -> None:
    cfg = config(policy={"unknown_user_roles": ["responder"]})
    assert actor(cfg, "slack", "U0NEW").roles == frozenset({"responder"})


def test_the_console_user_is_an_admin_only_on_a_loopback_bot() -> None:
    assert actor(config(), "console", "console").roles == frozenset({"admin"})
    exposed = config(http={"host": "0.0.0.0"}, console={"token": "s3cret"})
    assert actor(exposed, "console", "console").roles == frozenset()


# ---- asking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "who", "svc", "act", "outcome", "reason"),
    [
        ("none", "U0MIN", "search", "scale_up", Outcome.RUN, "no approval required"),
        ("approve", "U0MIN", "checkout", "restart", Outcome.APPROVE, "checkout requires approval"),
        (
            "two_person",
            "U0RAVI",
            "checkout",
            "rollback",
            Outcome.APPROVE,
            "checkout requires two-person approval",
        ),
        ("approve", "U0ASHA", "checkout", "restart", Outcome.APPROVE, "requires approval"),
        (
            "approve",
            "U0MIN",
            "checkout",
            "scale_up",
            Outcome.REFUSE,
            "scale_up is not allowed on checkout (allowed: restart, rollback)",
        ),
        (
            "approve",
            "U0MIN",
            "payments-v9",
            "restart",
            Outcome.REFUSE,
            "payments-v9 is not a configured service",
        ),
        (
            "approve",
            "U0VIC",
            "checkout",
            "restart",
            Outcome.REFUSE,
            "@Vic Tor has no responder role",
        ),
        ("approve", "U0NOBODY", "checkout", "restart", Outcome.REFUSE, "no responder role"),
    ],
)
def test_decide_request(
    approval: str, who: str, svc: str, act: str, outcome: Outcome, reason: str
) -> None:
    cfg = config(approval)
    decision = decide_request(cfg, actor(cfg, "slack", who), svc, act)
    assert decision.outcome == outcome
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("replicas", "outcome"),
    [
        (None, Outcome.RUN),
        (1, Outcome.RUN),
        (50, Outcome.RUN),
        (0, Outcome.REFUSE),
        (51, Outcome.REFUSE),
    ],
)
def test_a_replica_count_must_be_within_the_services_limits(
    replicas: int | None, outcome: Outcome
) -> None:
    cfg = config()
    decision = decide_request(cfg, actor(cfg, "slack", "U0MIN"), "search", "scale_up", replicas)
    assert decision.outcome == outcome
    if outcome == Outcome.REFUSE:
        assert decision.reason == f"{replicas} replicas is outside search's limits (1 to 50)"


# ---- approving ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "platform", "approver", "requested_by", "outcome", "reason"),
    [
        ("approve", "slack", "U0ASHA", "Min Lee", Outcome.RUN, "approved by @asha"),
        ("approve", "slack", "U0RAVI", "ravi", Outcome.RUN, "approved by @ravi"),  # self is fine
        ("approve", "slack", "U0MIN", "ravi", Outcome.REFUSE, "@Min Lee is not an approver"),
        ("approve", "slack", "U0STRANGER", "ravi", Outcome.REFUSE, "is not an approver"),
        ("two_person", "slack", "U0RAVI", "ravi", Outcome.REFUSE, "someone other than"),
        ("two_person", "whatsapp", "+919800000001", "ravi", Outcome.REFUSE, "someone other"),
        ("two_person", "slack", "U0ASHA", "ravi", Outcome.RUN, "approved by @asha"),
        ("two_person", "console", "console", "ravi", Outcome.RUN, "approved by @console"),
        ("two_person", "console", "console", "console", Outcome.REFUSE, "someone other"),
        ("two_person", "slack", "U0ASHA", "opsbot", Outcome.RUN, "approved by @asha"),
    ],
)
def test_may_approve(
    approval: str, platform: str, approver: str, requested_by: str, outcome: Outcome, reason: str
) -> None:
    cfg = config(approval)
    decision = may_approve(cfg, actor(cfg, platform, approver), "checkout", requested_by)
    assert decision.outcome == outcome
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("platform", "who", "requested_by", "outcome", "reason"),
    [
        ("slack", "U0ASHA", "Min Lee", Outcome.RUN, "denied by @asha"),
        ("slack", "U0MIN", "Min Lee", Outcome.RUN, "denied by @Min Lee"),  # withdrawing one's own
        ("console", "console", "Min Lee", Outcome.RUN, "denied by @console"),
        ("slack", "U0VIC", "Min Lee", Outcome.REFUSE, "neither an approver nor the requester"),
        ("slack", "U0STRANGER", "Min Lee", Outcome.REFUSE, "@U0STRANGER is neither"),
    ],
)
def test_may_deny(
    platform: str, who: str, requested_by: str, outcome: Outcome, reason: str
) -> None:
    cfg = config()
    decision = may_deny(cfg, actor(cfg, platform, who), requested_by)
    assert decision.outcome == outcome
    assert reason in decision.reason


def test_the_allow_list_is_the_services_actions() -> None:
    cfg = config()
    assert allow_listed(cfg, "checkout", "rollback").outcome == Outcome.RUN
    refused = allow_listed(cfg, "search", "restart")
    assert (refused.outcome, refused.reason) == (
        Outcome.REFUSE,
        "restart is not allowed on search (allowed: scale_up)",
    )
    assert allow_listed(cfg, "billing", "restart").reason == "billing is not a configured service"


# ---- acting on a diagnosis ------------------------------------------------------------------


def diagnosis(
    action: str = "restart", confidence: float = 0.8, svc: str | None = "checkout"
) -> Diagnosis:
    return Diagnosis(
        summary="checkout: out of memory",
        root_cause="heap exhausted",
        category=Category.MEMORY_LEAK,
        proposed_action=ProposedAction(action=ActionKind(action), service=svc),
        confidence=confidence,
    )


@pytest.mark.parametrize(
    ("enabled", "d", "svc", "outcome", "reason"),
    [
        (True, diagnosis(), "checkout", Outcome.RUN, "restart proposed with confidence 0.80"),
        (True, diagnosis(confidence=0.75), "checkout", Outcome.RUN, "confidence 0.75"),
        (True, diagnosis(confidence=0.74), "checkout", Outcome.REFUSE, "0.74 is below 0.75"),
        (False, diagnosis(), "checkout", Outcome.REFUSE, "auto-remediation is off"),
        (True, diagnosis("none"), "checkout", Outcome.REFUSE, "proposes no action"),
        (True, diagnosis("rollback"), "checkout", Outcome.REFUSE, "not in policy.auto_remediate"),
        (True, diagnosis(svc="*"), "checkout", Outcome.REFUSE, "proposes restart for *"),
        (True, diagnosis(svc="search"), "checkout", Outcome.REFUSE, "for search, not checkout"),
        (True, diagnosis(), "search", Outcome.REFUSE, "for checkout, not search"),
        (True, diagnosis(svc=None), "search", Outcome.REFUSE, "restart is not allowed on search"),
        (True, diagnosis(svc=None), None, Outcome.REFUSE, "restart is not allowed on None"),
    ],
)
def test_auto_remediation(
    enabled: bool, d: Diagnosis, svc: str | None, outcome: Outcome, reason: str
) -> None:
    cfg = config(policy={"auto_remediate": {"enabled": enabled, "min_confidence": 0.75}})
    decision = auto_remediation(cfg, svc, d)
    assert decision.outcome == outcome
    assert reason in decision.reason
