"""Pods that cannot be placed or even created: the scheduler reports FailedScheduling ("0/3 nodes
are available: 3 Insufficient memory", "didn't match Pod's node affinity/selector",
"untolerated taint", "unbound immediate PersistentVolumeClaims"), or the ReplicaSet controller
reports FailedCreate because the pod exceeds a ResourceQuota or LimitRange. The pod spec asks
for what the cluster cannot give: the rollout is wrong, not the running code."""

from __future__ import annotations

import re

from agent.offline import kube
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

_WHY = re.compile(
    r"Insufficient [\w./-]+|didn't match Pod's node affinity/selector|untolerated taint[^,.]*|"
    r"unbound immediate PersistentVolumeClaims|persistentvolumeclaim \"[\w.-]+\" not found|"
    r"didn't find available persistent volumes to bind|node\(s\) had volume node affinity conflict|"
    r"didn't have free ports for the requested pod ports|Too many pods"
)
# The quota and LimitRange admission plugins, as the ReplicaSet controller's FailedCreate quotes them.
_FORBIDDEN = re.compile(
    r"exceeded quota: [\w.-]+(?:, requested: \S+)?|"
    r"maximum (?:cpu|memory|ephemeral-storage) usage per (?:Container|Pod) is \S+|"
    r"must specify (?:limits|requests)\.(?:cpu|memory)"
)
_UNSCHEDULABLE = re.compile(r"FailedScheduling|nodes are available")
_SPEC_LINE = re.compile(r"^\s*(Node-Selectors|ClaimName|StorageClass):\s+(?!<none>)\S")


class Unschedulable:
    name = "unschedulable"
    category = Category.BAD_DEPLOY
    action = ActionKind.ROLLBACK

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        f = kube.facts(obs)
        events = [e for e in f.events if e.reason == "FailedScheduling"]
        lines = [e.line for e in events] or [
            line for line in kube.lines_of(obs) if _UNSCHEDULABLE.search(line.text)
        ]
        reasons = [(line, m) for line in lines if (m := _WHY.search(line.text))]
        reasons += [
            (e.line, m)
            for e in f.events
            if e.reason == "FailedCreate" and (m := _FORBIDDEN.search(e.line.text))
        ]
        if not reasons:
            return None
        line, why = reasons[0]
        created = why.re is _FORBIDDEN  # refused at admission: no pod exists to schedule
        case = Case()
        case.add(0.55, line.evidence(max(0, why.start() - 80), why.end()))
        requests = [
            r
            for c in f.containers
            for name, r in c.requests.items()
            if name.lower() in why[0].lower()
        ]
        spec = [x for x in kube.lines_of(obs) if _SPEC_LINE.match(x.text)]
        case.add(0.1 if requests or spec else 0.0, *(x.evidence() for x in (requests or spec)[:1]))
        pending = [x for x in kube.lines_of(obs) if re.match(r"^Status:\s+Pending", x.text)]
        case.add(0.1 if pending else 0.0, *(x.evidence() for x in pending[:1]))
        back = kube.rollback_possible(ctx, obs)
        return case.finding(
            self,
            headline=f"pods cannot be {'created' if created else 'scheduled'}: {why[0]}",
            root_cause=(
                f"The namespace's quota or limits refuse the new pods ({why[0]}), so none is "
                "created: the pod spec asks for more than the namespace allows."
                if created
                else f"The scheduler cannot place the pods ({why[0]}), so they stay Pending: the "
                "pod spec asks for what no node offers (resource requests, node selector or "
                "affinity, tolerations, a volume claim)."
            ),
            checks=(
                "kubectl describe pod POD: the FailedScheduling message and the pod's requests, "
                "nodeSelector, affinity and tolerations",
                "kubectl describe nodes: allocatable vs requested, labels and taints",
                "kubectl get pvc,storageclass: is every claim bound to an existing class?",
            ),
            mitigation=(
                "Roll back to the revision whose pods were scheduled, then fix the spec"
                if back
                else "A human must fix the pod spec (requests, selector, tolerations, volume "
                "claim) or add capacity; restarting changes nothing"
            ),
            action=self.action if back else ActionKind.NONE,
        )


RULE = Unschedulable()
