"""An operator's chat message as one Intent: the LLM interprets, the grammar checks and stands in.

`parse` is the deterministic grammar (agent.grammar); `understand` asks the LLM chain first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.errors import ProviderError
from agent.grammar import (
    ALL_SERVICES,
    affirms,
    mentioned_actions,
    parse,
    priority_name,
    service_name,
)
from agent.llm.base import Completion, Message
from agent.types import ActionKind, Intent, IntentKind

__all__ = ["ALL_SERVICES", "SET_INTENT_TOOL", "Completer", "parse", "understand"]

log = structlog.get_logger(__name__)

CONTEXT_MAX_CHARS = 200
"""The thread context line is cut here: it is a label, never alert or log text."""


class Completer(Protocol):
    """What `understand` needs of the LLM: agent.llm.chain.ProviderChain, or one provider."""

    async def complete(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        json_mode: bool = False,
    ) -> Completion: ...


class _Arguments(BaseModel):
    """The arguments of `set_intent`, mirroring Intent's fields."""

    model_config = ConfigDict(extra="ignore")

    kind: IntentKind = Field(description="What the operator wants.")
    action: ActionKind | None = Field(
        default=None, description="For kind action (and deny of one): which action."
    )
    service: str | None = Field(
        default=None,
        description='A service named in the message, as written. Omit for "it"/"this"/none.',
    )
    replicas: int | None = Field(default=None, ge=0, description='Target count: "scale to 6".')
    delta: int | None = Field(default=None, description='Relative change: "add 2 replicas".')
    assignee: str | None = Field(default=None, description="Ticket assignee, as written.")
    priority: str | None = Field(
        default=None, description="Ticket priority: Highest, High, Medium, Low, Lowest."
    )
    duration_s: int | None = Field(default=None, ge=0, description="Snooze length in seconds.")
    enabled: bool | None = Field(default=None, description="Chaos mode on (true) or off.")
    incident_ref: str | None = Field(default=None, description='Incident number, "#42" -> "42".')

    @model_validator(mode="after")
    def _action_named(self) -> _Arguments:
        if self.kind is IntentKind.ACTION and self.action in (None, ActionKind.NONE):
            raise ValueError("kind action needs an action")
        return self


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with `$ref`s replaced by their definitions (small models follow refs badly)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
            return target | _inline({k: v for k, v in node.items() if k != "$ref"}, defs)
        return {k: _inline(v, defs) for k, v in node.items() if k not in ("$defs", "title")}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


_SCHEMA = _Arguments.model_json_schema()
SET_INTENT_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "set_intent",
        "description": "Record what the operator's message asks for.",
        "parameters": _inline(_SCHEMA, _SCHEMA.get("$defs", {})),
    },
}

_SYSTEM = """\
You read one chat message an on-call operator wrote in an incident thread and call set_intent \
exactly once with what it asks for. Interpret only the operator's own words.
Kinds: acknowledge (taking the incident), resolve (it is fixed), diagnose (investigate again), \
question (asks something; also when it only asks whether to act), action (restart, scale_up or \
rollback now), ticket (file a Jira issue), snooze (silence for a while), status, oncall, help, \
approve or deny (a pending request), chaos (on/off), stats, list (incidents), unknown.
Rules: choose action only when the operator tells you to restart, scale or roll back; a negated \
action ("don't restart") is deny with that action. Omit service when the message means the \
incident's own service ("it", "this"). Use "*" for all services. If unsure, use unknown.
Known services: {services}.
Known people: {people}."""


def _messages(text: str, services: list[str], people: list[str], context: str) -> list[Message]:
    system = _SYSTEM.format(
        services=", ".join(services) or "(none)", people=", ".join(people) or "(none)"
    )
    messages: list[Message] = [{"role": "system", "content": system}]
    line = " ".join(context.split())[:CONTEXT_MAX_CHARS]
    if line:
        messages.append({"role": "system", "content": f"Thread: {line}"})
    messages.append({"role": "user", "content": text})
    return messages


def _arguments(completion: Completion) -> _Arguments:
    """The set_intent arguments from a tool call, or from a JSON answer if the model wrote one."""
    call = next((c for c in completion.tool_calls if c.name == "set_intent"), None)
    raw = call.arguments if call is not None else completion.content
    if not raw:
        raise ValueError("no set_intent call and no content")
    data = json.loads(raw)
    if isinstance(data, dict) and isinstance(data.get("arguments"), dict):
        data = data["arguments"]  # {"name": "set_intent", "arguments": {...}} written as text
    return _Arguments.model_validate(data)


def _intent(args: _Arguments, text: str, grammar: Intent) -> Intent:
    ref = (args.incident_ref or "").strip().lstrip("#")
    return Intent(
        kind=args.kind,
        action=args.action if args.kind in (IntentKind.ACTION, IntentKind.DENY) else None,
        service=service_name(args.service),
        replicas=args.replicas,
        delta=args.delta,
        assignee=(args.assignee or "").strip().lstrip("@") or None,
        priority=priority_name(args.priority) if args.priority else None,
        duration_s=args.duration_s,
        enabled=args.enabled,
        # "#42" in the text is certain; a number the model found elsewhere is not.
        incident_ref=grammar.incident_ref or (ref if ref.isdigit() else None),
        text=text,
        source="llm",
    )


def _overreach(llm: Intent, grammar: Intent, text: str, services: list[str]) -> str | None:
    """Why the LLM's reading gives more power than the operator's words do, if it does."""
    if llm.kind is IntentKind.CHAOS and "chaos" not in text.lower():
        return "the message does not mention chaos mode"
    if llm.kind not in (IntentKind.ACTION, IntentKind.APPROVE):
        return None
    if grammar.kind is IntentKind.DENY:
        return "the message is a refusal"
    if llm.kind is IntentKind.ACTION and llm.action not in mentioned_actions(
        text, services=services
    ):
        return f"the message names no {llm.action} verb"
    if llm.kind is IntentKind.APPROVE and not affirms(text):
        return "the message says no yes"
    return None


async def understand(
    text: str,
    *,
    services: Iterable[str],
    people: Iterable[str] = (),
    chain: Completer | None,
    context: str = "",
) -> Intent:
    """The operator's message as an Intent, read by the LLM (source "llm") when it can be.

    Falls back to the grammar (source "grammar") when there is no chain, every provider
    fails, or the answer is not a valid set_intent call. The LLM only interprets: an ACTION
    whose verb (restart/scale/rollback family, outside quotes) is not in the text, an APPROVE
    with no yes in it, either against a message the grammar reads as a refusal, or CHAOS for a
    message that does not say "chaos", gives the grammar's reading instead. `context` is one short line about the thread (cut to
    CONTEXT_MAX_CHARS); never pass alert or log text. A service the LLM names that is not in
    `services` is kept as written, for the router to refuse.
    """
    services = list(services)
    people = list(people)
    grammar = parse(text, services=services, people=people)
    if chain is None:
        return grammar
    try:
        completion = await chain.complete(
            _messages(text, services, people, context), tools=[SET_INTENT_TOOL]
        )
        args = _arguments(completion)
    except ProviderError as exc:
        log.info("intent.llm_unavailable", reason=str(exc))
        return grammar
    except ValueError as exc:  # also json.JSONDecodeError and pydantic.ValidationError
        log.warning("intent.llm_invalid", reason=str(exc)[:200])
        return grammar
    llm = _intent(args, text, grammar)
    if reason := _overreach(llm, grammar, text, services):
        log.warning("intent.llm_overruled", llm_kind=llm.kind, action=llm.action, reason=reason)
        return grammar
    return llm
