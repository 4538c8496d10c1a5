"""Image pull failure: the kubelet cannot pull the image the pod spec names (ErrImagePull, then
ImagePullBackOff): a wrong tag or repository, a registry that does not resolve, missing pull
credentials. What was deployed is wrong, so it is a bad rollout."""

from __future__ import annotations

import re

from agent.offline import kube
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, Evidence, IncidentContext, Observations

_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
# Why a pull fails, as containerd, CRI-O and the Docker registry API word it.
_CAUSE = re.compile(
    r"pull access denied[^\n\"\\]*|repository does not exist[^\n\"\\]*|manifest unknown|"
    r"manifest for \S+ not found|not found: manifest|\S+: not found|no such host|unauthorized: [^\n\"\\]*|"
    r"toomanyrequests[^\n\"\\]*|x509: [^\n\"\\]*|i/o timeout|connection refused|"
    r"failed to resolve reference"
)
_REASON_TEXT = re.compile("|".join(_REASONS))
_PULL_FAILED = re.compile(
    r"Failed to pull image|CannotPullContainerError|Error response from daemon"
)
_IMAGE = re.compile(r"^\s*Image:\s+(?P<image>\S+)")
_QUOTE_BEFORE = 150  # characters kept before the cause: the image reference sits there


def _cause_evidence(line: kube.Line) -> tuple[Evidence, str]:
    causes = list(_CAUSE.finditer(line.text))
    best = next((m for m in causes if m[0] != "failed to resolve reference"), None)
    if best is None:
        best = causes[0] if causes else None
    if best is None:
        return line.evidence(), "the image could not be pulled"
    return line.evidence(max(0, best.end() - _QUOTE_BEFORE), best.end()), best[0].strip(" :,")


class ImagePull:
    name = "image_pull"
    category = Category.BAD_DEPLOY
    action = ActionKind.ROLLBACK

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        f = kube.facts(obs)
        reasons = kube.reason_lines(f, *_REASONS)
        events = [e for e in f.events if any(r in e.message for r in _REASONS)]
        pulls = [e.line for e in f.events if _PULL_FAILED.search(e.message)]
        pulls += [line for line in kube.lines_of(obs) if _PULL_FAILED.search(line.text)]
        alert = s.alert_hit(ctx, _REASON_TEXT)  # KubeContainerWaiting's `reason` label
        if not (reasons or events or alert):
            return None
        case = Case()
        case.add(0.0 if reasons or events else 0.4, alert)
        failure_line = next(iter(pulls), None)
        why = "the image could not be pulled"
        if failure_line is not None:
            quote, why = _cause_evidence(failure_line)
            case.add(0.35, quote)
        case.add(0.3, *(r.evidence() for r in reasons[:1]))
        quoted = {r.text for r in reasons[:1]}
        backoff = [e for e in events if e.line.text not in quoted]
        backoff.sort(key=lambda e: "BackOff" not in e.message)  # the state it is stuck in
        case.add(0.15 if backoff else 0.0, *(e.evidence() for e in backoff[:1]))
        image = next(
            (
                (line, m["image"])
                for line in kube.lines_of(obs)
                if (m := _IMAGE.match(line.text)) and m["image"] != "<none>"
            ),
            None,
        )
        case.cite([image[0].evidence()] if image else [])
        deploy = s.recent_deploy(obs)
        case.add(0.05 if deploy else 0.0, s.deploy_evidence(deploy) if deploy else None)

        back = kube.rollback_possible(ctx, obs)
        ref = f" {image[1]}" if image else ""
        previous = (
            "Roll back to the previous revision, whose image could be pulled"
            if back
            else "There is no earlier revision to roll back to: a human must fix the image "
            "reference (or the registry credentials) in the spec"
        )
        return case.finding(
            self,
            headline=f"the pods cannot pull their image{ref} ({why})",
            root_cause=(
                f"The rollout references an image{ref} that the kubelet cannot pull ({why}), so "
                "the new pods never start (ErrImagePull, then ImagePullBackOff)."
            ),
            checks=(
                "Check the image name and tag exist in the registry (docker manifest inspect)",
                "Check imagePullSecrets and the registry's credentials and rate limits",
                "kubectl rollout history deployment/NAME: what changed in the pod template",
            ),
            mitigation=previous,
            action=self.action if back else ActionKind.NONE,
        )


RULE = ImagePull()
