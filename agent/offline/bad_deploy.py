"""Bad deploy: a new error signature (panic, exception, failing image) that started right
after a recent deploy or config change."""

from __future__ import annotations

from agent.offline import crash_loop
from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

APP_ERRORS = (
    s.pattern(
        "image_pull",
        r"ImagePullBackOff|ErrImagePull|Failed to pull image|manifest unknown|pull access denied|"
        r"CannotPullContainerError",
        0.35,
    ),
    s.pattern("go_panic", r"http: panic serving|^panic: |runtime error: ", 0.25),
    s.pattern(
        "null_deref",
        r"nil pointer dereference|NullPointerException|"
        r"Cannot read propert(y|ies) of (undefined|null)|"
        r"'NoneType' object|undefined is not a function|is not a function|NoMethodError|"
        r"undefined method|NullReferenceException|Object reference not set",
        0.2,
    ),
    s.pattern(
        "exception_line",
        r"^\s*(?:[a-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception)(?:: .*|$)|Uncaught \w+",
        0.2,
    ),
    s.pattern("traceback", r"Traceback \(most recent call last\)|Exception in thread", 0.1),
    s.pattern("server_error", r"Internal Server Error|\" 50[0-4] \d+ ", 0.05),
)

# A setting or secret the new release expects and does not find (config is part of a deploy).
CONFIG_ERRORS = tuple(
    p for p in crash_loop.STARTUP_FAILURES if p.name in ("bad_config", "missing_setting")
)


class BadDeploy:
    name = "bad_deploy"
    category = Category.BAD_DEPLOY
    action = ActionKind.ROLLBACK

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        deploy = s.recent_deploy(obs)
        if deploy is None:
            return None
        errors = s.metric(obs, s.OWN_ERRORS)
        onset = (
            errors.onset_minutes_ago() if errors is not None and errors.stepped(3.0, 0.01) else None
        )
        if onset is not None and not s.started_after(deploy, onset):
            return None  # the errors were there before the deploy
        issues = s.new_issues(obs, deploy)
        hits = s.observed(obs, APP_ERRORS + CONFIG_ERRORS)
        latency = s.latency(obs)
        slower = latency.onset_minutes_ago() if latency and latency.stepped(2.0) else None
        if slower is not None and not s.started_after(deploy, slower):
            slower = None  # it was slow before the deploy
        regressed = slower is not None
        if not (issues or onset is not None or hits or regressed):
            return None
        case = Case(score=0.2)
        case.add(s.weight(hits, 0.3), *s.quotes(hits, 2))
        frame = s.frame_near(obs, hits)
        case.cite([frame.evidence] if frame else [])
        case.add(0.1, s.deploy_evidence(deploy))
        case.add(0.25 if issues else 0.0, *(s.issue_evidence(i) for i in issues[:1]))
        if errors is not None and onset is not None:
            case.add(0.25, errors.evidence)
        if latency is not None and regressed:
            case.add(0.2, latency.evidence)
        config = [h for h in hits if h.pattern in CONFIG_ERRORS]
        if obs.health is not None and not obs.health.healthy and config:
            case.add(0.1, s.health_evidence(obs))  # the new config leaves it unable to serve
        if any(deploy.sha in line for line in obs.logs) or (
            obs.health is not None and deploy.sha in obs.health.body
        ):
            case.score += 0.05  # the failing process reports the new version
        if crash_loop.looping(ctx, obs):
            case.score *= 0.8  # a process that never starts is a crash loop (crash_loop rule)
        requests = s.requests(obs)
        if requests is not None and requests.ratio >= 2:
            case.score *= 0.6  # more traffic, not new code, may explain new errors

        if issues:
            error = issues[0].title
        elif hits:
            error = hits[0].phrase
        elif errors is not None and onset is not None:
            error = "a higher error rate"
        else:
            error = "slower responses"
        first_seen = issues[0].first_seen_minutes_ago if issues else None
        started = next((m for m in (onset, first_seen, slower) if m is not None), None)
        when = f", starting {s.fmt_minutes(started)} ago" if started is not None else ""
        measured = [
            m.describe() for m, on in ((errors, onset), (latency, slower)) if m and on is not None
        ]
        rate = f" ({'; '.join(measured)})" if measured else ""
        where = f" It fails in {frame.describe()}." if frame else ""
        return case.finding(
            self,
            headline=f"bad deploy {deploy.sha}: {error[: s.PHRASE_MAX]}",
            root_cause=(
                f"Deploy {s.deploy_quote(deploy)} introduced a new failure: {error}{when}"
                f"{rate}, right after the deploy.{where}"
            ),
            checks=(
                f"Diff {deploy.sha} against the previous release around the failing code path",
                "Confirm the errors come only from pods running the new version",
                "Check whether the change needs a data or config migration that did not run",
            ),
            mitigation=f"Roll back {deploy.sha}, then fix forward with a test for this case",
        )


RULE = BadDeploy()
