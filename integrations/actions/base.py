"""The executor contract (`ActionParams` in, `ActionResult` out) and what every executor shares:
placeholder rendering, scale targets, output budgets and one-line summaries."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

OUTPUT_BUDGET = 4000
SUMMARY_LIMIT = 300
EXCERPT_LIMIT = 160
DEFAULT_RETRY_AFTER_S = 30.0

# A substituted value may only hold these characters, and may not start with "-": it then can
# neither split into several arguments, reach a shell, nor pass itself off as an option.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._:][A-Za-z0-9._:-]*")
_PLACEHOLDER = re.compile(r"\{(service|replicas|delta|incident)\}")


@dataclass(frozen=True, slots=True)
class ActionParams:
    """One approved action: which (`restart` | `scale_up` | `rollback`), on what, asked by whom."""

    action: str
    service: str
    replicas: int | None = None
    delta: int | None = None
    requested_by: str = ""
    incident_id: str = ""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What the target answered: `summary` is one line for the chat thread, `output` a tail."""

    ok: bool
    summary: str
    output: str = ""
    duration_s: float = 0.0


class Executor(Protocol):
    """Runs one kind of action against one target.

    Raises `TransientError`/`PermanentError` only when the target cannot be reached; a target
    that answers "failed" gives `ActionResult(ok=False)`.
    """

    async def run(self, params: ActionParams) -> ActionResult: ...


class PlaceholderError(ValueError):
    """A placeholder has no value for this action, or its value is unsafe to substitute."""


def _placeholder_value(name: str, params: ActionParams) -> str:
    value = {
        "service": params.service,
        "replicas": params.replicas,
        "delta": params.delta,
        "incident": params.incident_id,
    }[name]
    if value is None or value == "":
        raise PlaceholderError(f"this action needs {{{name}}}, and none was given")
    text = str(value)
    if not _SAFE_VALUE.fullmatch(text):
        raise PlaceholderError(
            f"refused {{{name}}} = {text!r}: only letters, digits and . _ : - are allowed"
        )
    return text


def render(template: str, params: ActionParams) -> str:
    """Substitute `{service}`, `{replicas}`, `{delta}`, `{incident}`; other braces are kept."""
    return _PLACEHOLDER.sub(lambda m: _placeholder_value(m.group(1), params), template)


def scale_target(params: ActionParams, current: int, default: int | None = None) -> int:
    """The replica count to scale to: the one asked for, else the configured one, else one more."""
    if params.replicas is not None:
        return params.replicas
    if default is not None:
        return default
    return current + (params.delta if params.delta is not None else 1)


def retry_after_s(header: str | None) -> float:
    """Seconds to wait from a `Retry-After` header (seconds form), or a default."""
    try:
        return float(header) if header else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def tail(text: str, budget: int) -> str:
    """The last `budget` characters of `text`, marked when something was cut."""
    if len(text) <= budget:
        return text
    return "…" + text[len(text) - budget + 1 :]


def one_line(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """`text` on a single line (whitespace collapsed), cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def last_line(text: str) -> str:
    """The last non-blank line of `text`, or ""."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def build_summary(params: ActionParams, outcome: str) -> str:
    """One line for the chat thread: `restart checkout: <outcome>`."""
    return one_line(f"{params.action} {params.service}: {outcome}", SUMMARY_LIMIT)


def finish(
    params: ActionParams,
    started: float,
    *,
    ok: bool,
    outcome: str,
    output: str = "",
    budget: int = OUTPUT_BUDGET,
) -> ActionResult:
    """Build the result of a run that began at `started` (a `time.monotonic()` reading)."""
    return ActionResult(
        ok=ok,
        summary=build_summary(params, outcome),
        output=tail(output, budget),
        duration_s=time.monotonic() - started,
    )


def unsupported(params: ActionParams, started: float, executor: str, hint: str) -> ActionResult:
    """The result for an action this executor cannot perform; `hint` says what to use instead."""
    return finish(
        params,
        started,
        ok=False,
        outcome=f"the {executor} executor cannot {params.action}: {hint}",
    )
