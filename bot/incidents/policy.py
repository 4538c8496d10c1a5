"""Who may do what: the service allow-list, people's roles, approval modes, auto-remediation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.types import Diagnosis
from bot.app.config import Config, PersonConfig
from bot.app.server.logins import LOCAL_USER
from bot.app.server.peers import is_loopback
from bot.chat.adapters import is_local
from bot.chat.adapters.base import InboundMessage


class Outcome(StrEnum):
    RUN = "run"
    APPROVE = "needs_approval"
    REFUSE = "refused"


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    name: str
    roles: frozenset[str]
    person: PersonConfig | None = None

    @property
    def mention(self) -> str:
        return f"@{self.name}"

    def has(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str


def actor_for(cfg: Config, msg: InboundMessage) -> Actor:
    return actor_of(cfg, msg.platform, msg.user_id, msg.user_name)


def actor_of(cfg: Config, platform: str, user_id: str, user_name: str | None = None) -> Actor:
    """The person behind a user id; the local console user on a loopback bot is an admin.

    People are matched by the id the platform vouches for, never by `user_name`: a user or
    display name is chosen by its owner, and "ravi" from a stranger must not get Ravi's roles,
    nor be shown as "@ravi" in the thread; someone not in the directory goes by that id. The
    console vouches for its users by login, so its user ids are people's names.
    """
    person = cfg.person(user_id)
    if person is not None:
        return Actor(
            user_id,
            person.aliases[0] if person.aliases else person.name,
            frozenset(person.roles),
            person,
        )
    if is_local(platform) and user_id == LOCAL_USER and is_loopback(cfg.http.host):
        return Actor(user_id, user_name or LOCAL_USER, frozenset({"admin"}))
    return Actor(user_id, user_id, frozenset(cfg.policy.unknown_user_roles))


def allow_listed(cfg: Config, service: str, action: str) -> Decision:
    """The service's `actions` are the allow-list: checked when asked, approved and run, since
    the configuration may change while a request waits."""
    svc = cfg.services.get(service)
    if svc is None:
        return Decision(Outcome.REFUSE, f"{service} is not a configured service")
    if action not in svc.actions:
        allowed = ", ".join(sorted(svc.actions)) or "none"
        return Decision(
            Outcome.REFUSE, f"{action} is not allowed on {service} (allowed: {allowed})"
        )
    return Decision(Outcome.RUN, f"{action} is allowed on {service}")


def decide_request(
    cfg: Config, actor: Actor, service: str, action: str, replicas: int | None = None
) -> Decision:
    listed = allow_listed(cfg, service, action)
    if listed.outcome == Outcome.REFUSE:
        return listed
    svc = cfg.services[service]
    if replicas is not None and not svc.min_replicas <= replicas <= svc.max_replicas:
        return Decision(
            Outcome.REFUSE,
            f"{replicas} replicas is outside {service}'s limits "
            f"({svc.min_replicas} to {svc.max_replicas})",
        )
    if not actor.has("responder") and not actor.has("approver"):
        return Decision(
            Outcome.REFUSE, f"{actor.mention} has no responder role in the people directory"
        )
    if svc.approval == "none":
        return Decision(Outcome.RUN, "no approval required for this service")
    return Decision(
        Outcome.APPROVE,
        f"{service} requires {'two-person ' if svc.approval == 'two_person' else ''}approval",
    )


def may_approve(cfg: Config, actor: Actor, service: str, requested_by: str) -> Decision:
    """`requested_by` is the requester's name as stored with the request (`Actor.name`)."""
    svc = cfg.services.get(service)
    if not actor.has("approver"):
        return Decision(Outcome.REFUSE, f"{actor.mention} is not an approver")
    if svc is not None and svc.approval == "two_person" and _same_person(cfg, actor, requested_by):
        return Decision(
            Outcome.REFUSE, "two-person approval: someone other than the requester must approve"
        )
    return Decision(Outcome.RUN, f"approved by {actor.mention}")


def may_deny(cfg: Config, actor: Actor, requested_by: str) -> Decision:
    """Approvers may deny a request, and anyone may withdraw their own; nobody else."""
    if actor.has("approver") or _same_person(cfg, actor, requested_by):
        return Decision(Outcome.RUN, f"denied by {actor.mention}")
    return Decision(Outcome.REFUSE, f"{actor.mention} is neither an approver nor the requester")


def _same_person(cfg: Config, actor: Actor, requested_by: str) -> bool:
    """People are compared as people: Ravi asking on Slack and approving on WhatsApp is one."""
    requester = cfg.person(requested_by)
    if actor.person is not None and requester is not None:
        return actor.person == requester
    return requested_by in (actor.name, actor.id)


def auto_remediation(cfg: Config, service: str | None, d: Diagnosis) -> Decision:
    """Only listed actions, only when proposed with enough confidence, only when allowed."""
    rule = cfg.policy.auto_remediate
    action = d.action.value
    if not rule.enabled:
        return Decision(Outcome.REFUSE, "auto-remediation is off")
    if d.proposed_action is None or action == "none":
        return Decision(Outcome.REFUSE, "the diagnosis proposes no action")
    if action not in rule.actions:
        return Decision(Outcome.REFUSE, f"{action} is not in policy.auto_remediate.actions")
    if d.proposed_action.service not in (None, service):
        return Decision(
            Outcome.REFUSE,
            f"the diagnosis proposes {action} for {d.proposed_action.service}, not {service}",
        )
    if d.confidence < rule.min_confidence:
        return Decision(
            Outcome.REFUSE, f"confidence {d.confidence:.2f} is below {rule.min_confidence:.2f}"
        )
    svc = cfg.services.get(service or "")
    if svc is None or action not in svc.actions:
        return Decision(Outcome.REFUSE, f"{action} is not allowed on {service}")
    return Decision(
        Outcome.RUN,
        f"{action} proposed with confidence {d.confidence:.2f} "
        f"(at least {rule.min_confidence:.2f} acts on its own)",
    )
