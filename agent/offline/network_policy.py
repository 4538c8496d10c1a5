"""NetworkPolicy blocking egress: name lookups time out ("Try again", EAI_AGAIN) or connections
time out while a NetworkPolicy that selects the pod allows no egress (DNS on port 53 included).
A policy change broke it, not the peer."""

from __future__ import annotations

import re

from agent.offline import hosts, kube
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

_DENY = re.compile(r"deny|block|isolat|egress", re.IGNORECASE)
_TIMEOUTS = (
    s.pattern(
        "connect_timeout",
        r"Connection timed out|connect: connection timed out|ETIMEDOUT|i/o timeout|"
        r"ConnectTimeout",
        0.1,
    ),
)


class NetworkPolicyEgress:
    name = "network_policy"
    category = Category.BAD_DEPLOY
    action = ActionKind.NONE

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        policies = kube.facts(obs).network_policies
        if not policies:
            return None
        failed = [u for u in hosts.unresolved(obs) if u.temporary]
        timeouts = s.observed(obs, _TIMEOUTS)
        if not (failed or timeouts):
            return None
        policy = next((p for p in policies if _DENY.search(p.text)), policies[0])
        case = Case()
        case.add(0.35 + (0.15 if _DENY.search(policy.text) else 0.0), policy.evidence())
        case.add(0.3 if failed else 0.0, *(u.evidence for u in failed[:1]))
        case.add(0.1 if timeouts else 0.0, *s.quotes(timeouts, 1))
        if len(failed) >= 3:
            case.score += 0.05  # every lookup fails, not one
        host = hosts.most_named(failed)
        name = policy.text.split("NetworkPolicy/", 1)[-1].split()[0] if "/" in policy.text else ""
        return case.finding(
            self,
            headline=f"NetworkPolicy {name} blocks egress"
            + (f": lookups of {host} time out" if host else ""),
            root_cause=(
                f"A NetworkPolicy ({name or 'in the namespace'}) selects the pod and allows no "
                "egress, so DNS queries to kube-dns (port 53) and connections never leave the pod"
                + (f"; every lookup of {host} times out." if host else ".")
                + " The peer is fine; the policy change broke it."
            ),
            checks=(
                "kubectl get networkpolicy -n NAMESPACE -o yaml: which policies select the pod "
                "and what egress they allow",
                "Allow egress to kube-dns (UDP and TCP 53) and to the service the pod calls",
                "From the pod: nslookup kubernetes.default to confirm DNS is blocked",
            ),
            mitigation="A human must fix the NetworkPolicy to allow DNS and the needed egress; "
            "restarting or rolling back the workload does not change the policy",
        )


RULE = NetworkPolicyEgress()
