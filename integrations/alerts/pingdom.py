"""Parse Pingdom state-change webhooks (uptime and transaction checks): `check_id`,
`check_name`, `previous_state` → `current_state` (`DOWN` fires, `UP` resolves)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import UtcDatetime, validate

SOURCE = "pingdom"

_FIRING = frozenset({"down", "failing", "unconfirmed_down"})


class _CheckParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    full_url: str | None = None
    hostname: str | None = None


class _Pingdom(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    check_id: str
    check_name: str
    check_type: str | None = None
    check_params: _CheckParams | None = None
    current_state: str
    previous_state: str | None = None
    importance_level: str | None = None
    state_changed_timestamp: UtcDatetime
    description: str | None = None
    long_description: str | None = None
    tags: list[str] = Field(default_factory=list)


def matches(body: dict[str, object]) -> bool:
    return "check_id" in body and "current_state" in body


def parse(body: object) -> list[Alert]:
    p = validate(_Pingdom, body)
    params = p.check_params or _CheckParams()
    return [
        normalize.alert(
            SOURCE,
            f"pingdom:{p.check_id}",
            title=normalize.title(p.check_name, p.description) or p.check_name,
            resolved=p.current_state.strip().lower() not in _FIRING,
            raw_severity=p.importance_level,
            at=p.state_changed_timestamp,
            service=p.check_name,
            labels={
                "alertname": p.check_name,
                "check_type": p.check_type,
                "host": params.hostname,
                "state": p.current_state,
                "previous_state": p.previous_state,
                "tags": ",".join(p.tags),
            },
            annotations={"description": p.long_description, "url": params.full_url},
        )
    ]
