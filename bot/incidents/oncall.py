"""Who is on call: rotations that hand off daily or weekly at a local time, with overrides.

Pure functions of the configuration and an instant, so every replica (and a restarted one)
agrees on the answer without storing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.app.config import Config, PersonConfig, RotationConfig

ONCALL = "oncall"


@dataclass(frozen=True, slots=True)
class Shift:
    rotation: str
    person: PersonConfig
    until: datetime  # the next hand-off (or the end of the override), aware
    override: bool = False


def _period_days(rot: RotationConfig) -> int:
    return 1 if rot.handoff == "daily" else 7


def _index_and_handoff(rot: RotationConfig, at: datetime) -> tuple[int, datetime]:
    """Which turn (0, 1, ...) holds the shift at `at`, and when it ends; by the local wall
    clock, so a hand-off stays at `rot.at` across daylight-saving changes."""
    tz = ZoneInfo(rot.timezone)
    local = at.astimezone(tz)
    days = (local.date() - rot.start).days
    if local.time().replace(tzinfo=None) < rot.at:
        days -= 1  # today's hand-off has not happened yet
    period = _period_days(rot)
    turn = days // period
    next_day = rot.start + timedelta(days=(turn + 1) * period)
    return turn, datetime.combine(next_day, rot.at, tz)


def shift(cfg: Config, name: str, at: datetime) -> Shift:
    """The shift of rotation `name` at the instant `at` (overrides first)."""
    rot = cfg.oncall.rotations[name]
    for o in rot.overrides:
        if o.start <= at < o.end:
            person = cfg.person(o.person)
            assert person is not None  # checked when the config was loaded
            return Shift(name, person, o.end, override=True)
    turn, until = _index_and_handoff(rot, at)
    person = cfg.person(rot.people[turn % len(rot.people)])
    assert person is not None
    starts = [o.start for o in rot.overrides if at < o.start < until]
    return Shift(name, person, min([until, *starts]))


def resolve(cfg: Config, who: str, at: datetime) -> PersonConfig | None:
    """A step's `notify` entry → the person: by name or alias, or the rotation's current shift."""
    if who == ONCALL or who.startswith(ONCALL + ":"):
        name = who.partition(":")[2] or next(iter(cfg.oncall.rotations), "")
        return shift(cfg, name, at).person if name in cfg.oncall.rotations else None
    return cfg.person(who)


def describe(cfg: Config, at: datetime) -> str:
    """The answer to "who is on call": each rotation's person and until when (local time)."""
    if not cfg.oncall.rotations:
        return ""
    lines = []
    for name, rot in cfg.oncall.rotations.items():
        s = shift(cfg, name, at)
        until = s.until.astimezone(ZoneInfo(rot.timezone))
        extra = " (override)" if s.override else ""
        lines.append(f"{name}: {s.person.name}{extra} until {until:%a %d %b %H:%M} {rot.timezone}")
    return "On call — " + "; ".join(lines)
