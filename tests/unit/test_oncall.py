"""Rotations hand off at their local time (across daylight-saving changes), overrides win,
"oncall" resolves to the current shift, and the config names bad rotations and policies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from bot.app.config import Config
from bot.incidents import oncall

PEOPLE = [
    {"name": "Ravi Kumar", "aliases": ["ravi"], "whatsapp": "+919800000001"},
    {"name": "Mei Chen", "aliases": ["mei"]},
    {"name": "Ana Lima", "aliases": ["ana"]},
]


def config(rotation: dict[str, Any], **extra: Any) -> Config:
    return Config.model_validate(
        {"people": PEOPLE, "oncall": {"rotations": {"primary": rotation}}, **extra}
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def on_call(cfg: Config, at: str) -> str:
    return oncall.shift(cfg, "primary", utc(at)).person.name


def test_a_daily_rotation_hands_off_at_the_local_time() -> None:
    cfg = config(
        {
            "people": ["ravi", "mei", "ana"],
            "handoff": "daily",
            "at": "09:00",
            "timezone": "Asia/Kolkata",  # UTC+05:30
            "start": "2026-12-01",
        }
    )
    assert on_call(cfg, "2026-12-01T03:29:59") == "Ana Lima"  # 08:59 IST: the shift before
    assert on_call(cfg, "2026-12-01T03:30:00") == "Ravi Kumar"  # 09:00 IST: the first turn
    assert on_call(cfg, "2026-12-02T03:29:59") == "Ravi Kumar"
    assert on_call(cfg, "2026-12-02T03:30:00") == "Mei Chen"
    assert on_call(cfg, "2026-12-04T03:30:00") == "Ravi Kumar"  # round again
    shift = oncall.shift(cfg, "primary", utc("2026-12-02T12:00:00"))
    assert shift.until == utc("2026-12-03T03:30:00")


def test_a_weekly_rotation_keeps_its_local_hand_off_across_daylight_saving() -> None:
    cfg = config(
        {
            "people": ["ravi", "mei"],
            "handoff": "weekly",
            "at": "09:00",
            "timezone": "Europe/London",
            "start": "2027-03-22",  # a Monday; British Summer Time starts on Sunday the 28th
        }
    )
    assert on_call(cfg, "2027-03-22T09:00:00") == "Ravi Kumar"  # 09:00 GMT
    assert on_call(cfg, "2027-03-28T12:00:00") == "Ravi Kumar"
    assert on_call(cfg, "2027-03-29T07:59:59") == "Ravi Kumar"  # 08:59 BST
    assert on_call(cfg, "2027-03-29T08:00:00") == "Mei Chen"  # 09:00 BST, one hour earlier in UTC


def test_an_override_takes_the_shift_for_its_window() -> None:
    cfg = config(
        {
            "people": ["ravi", "mei"],
            "handoff": "weekly",
            "start": "2026-12-21",
            "overrides": [
                {
                    "person": "ana",
                    "start": "2026-12-24T18:00:00+00:00",
                    "end": "2026-12-26T09:00:00+00:00",
                }
            ],
        }
    )
    before = oncall.shift(cfg, "primary", utc("2026-12-24T17:00:00"))
    assert (before.person.name, before.until) == ("Ravi Kumar", utc("2026-12-24T18:00:00"))
    during = oncall.shift(cfg, "primary", utc("2026-12-25T03:00:00"))
    assert (during.person.name, during.override) == ("Ana Lima", True)
    assert on_call(cfg, "2026-12-26T09:00:00") == "Ravi Kumar"
    assert "Ana Lima (override)" in oncall.describe(cfg, utc("2026-12-25T03:00:00"))


def test_oncall_in_a_step_is_the_current_shift() -> None:
    cfg = config({"people": ["ravi", "mei"], "handoff": "daily", "start": "2026-12-01"})
    at = utc("2026-12-02T10:00:00")
    assert oncall.resolve(cfg, "oncall", at).name == "Mei Chen"  # type: ignore[union-attr]
    assert oncall.resolve(cfg, "oncall:primary", at).name == "Mei Chen"  # type: ignore[union-attr]
    assert oncall.resolve(cfg, "ravi", at).name == "Ravi Kumar"  # type: ignore[union-attr]


def test_a_route_names_its_policy_else_the_first_matching_policy_applies() -> None:
    step = {"notify": ["ravi"]}
    cfg = Config.model_validate(
        {
            "people": PEOPLE,
            "routes": [{"match": {"service": "billing"}, "escalation": "payments"}, {"match": {}}],
            "oncall": {
                "policies": {
                    "critical": {"match": {"severity": "critical"}, "steps": [step]},
                    "payments": {"match": {"team": "payments"}, "steps": [step]},
                }
            },
        }
    )
    assert cfg.escalation_for({"service": "billing", "severity": "critical"}) == "payments"
    assert cfg.escalation_for({"severity": "critical"}) == "critical"
    assert cfg.escalation_for({"severity": "warning"}) is None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"oncall": {"rotations": {"primary": {"people": ["bob"], "start": "2026-12-01"}}}},
            "oncall.rotations.primary: 'bob' is not in people",
        ),
        (
            {
                "oncall": {
                    "rotations": {
                        "primary": {
                            "people": ["ravi"],
                            "start": "2026-12-01",
                            "timezone": "Mars/Base",
                        }
                    }
                }
            },
            "unknown time zone 'Mars/Base'",
        ),
        (
            {"oncall": {"policies": {"p": {"steps": [{"notify": ["oncall:night"]}]}}}},
            "oncall.policies.p.steps.0.notify: 'oncall:night' is neither",
        ),
        (
            {"routes": [{"match": {}, "escalation": "nope"}]},
            "routes.0.escalation: no policy 'nope'",
        ),
    ],
)
def test_config_names_what_is_wrong(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(")):
        Config.model_validate({"people": PEOPLE, **data})
