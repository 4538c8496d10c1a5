"""Bad configuration value: the host the service fails to reach is one its own configuration
names (a ConfigMap entry, an env var), and nothing else fails: the shipped config is wrong, not
the dependency. Rolled back only when an earlier revision exists."""

from __future__ import annotations

from agent.offline import hosts, kube
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations


class ConfigValue:
    name = "config_value"
    category = Category.BAD_DEPLOY
    action = ActionKind.ROLLBACK

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        # "No such name", not "no answer": the name itself is wrong (a resolver that cannot
        # be reached is a network problem, whatever the configuration says).
        failed = [u for u in hosts.unresolved(obs) if not u.temporary]
        host = hosts.most_named(failed)
        if host is None:
            return None
        entries = [
            (key, value, line)
            for key, value, line in kube.facts(obs).config
            if host in value.replace("/", " ").replace(":", " ").split() or f"//{host}" in value
        ]
        if not entries:
            return None
        key, value, line = entries[0]
        first = next(u for u in failed if u.host == host)
        case = Case()
        case.add(0.45, line.evidence())
        case.add(0.25, first.evidence)
        error = next(
            (u for u in failed if u.host == host and u.line.index != first.line.index), None
        )
        case.add(0.05 if error else 0.0, error.evidence if error else None)
        back = kube.rollback_possible(ctx, obs)
        if (revision := kube.facts(obs).workload.revision_line) is not None:
            case.cite([revision.evidence()])
        return case.finding(
            self,
            headline=f"{key} points at {host}, which does not resolve",
            root_cause=(
                f"The service's configuration sets {key}: {value}, and the host {host} does not "
                "resolve, so every call that uses it fails. The value shipped with the "
                "configuration is wrong; no dependency is down."
            ),
            checks=(
                f"Check the intended value of {key} (ConfigMap, env, Helm values)",
                f"From the pod: nslookup {host}",
                "kubectl rollout history: did the value change with the last rollout?",
            ),
            mitigation=(
                f"Roll back to the revision with the previous {key}, then fix the value"
                if back
                else f"There is no earlier revision to roll back to: a human must correct {key} "
                "and restart the pods to pick it up"
            ),
            action=self.action if back else ActionKind.NONE,
        )


RULE = ConfigValue()
