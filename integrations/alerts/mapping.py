"""Custom mappings: any JSON body turned into an `Alert` by a few Jinja2 templates (the
language Grafana OnCall's integration templates use), rendered in Jinja2's immutable sandbox
with the body as `payload`: `title: "{{ payload.check.name }}"`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from jinja2 import ChainableUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from integrations.alerts import normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import parse_optional_timestamp
from integrations.errors import PayloadError

VARIABLE = "payload"

# A missing key renders empty (a body without `service` has no service), as in OnCall.
_ENV = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


def check_template(source: str) -> str:
    """Compile a template, or raise ValueError saying what is wrong with it."""
    try:
        tree = _ENV.parse(source)
        _ENV.from_string(tree)
    except TemplateSyntaxError as exc:
        raise ValueError(f"not a valid template (line {exc.lineno}): {exc.message}") from None
    unknown = meta.find_undeclared_variables(tree) - {VARIABLE}
    if unknown:
        raise ValueError(
            f"uses {', '.join(sorted(unknown))}: the body is `{VARIABLE}`, "
            f'e.g. "{{{{ {VARIABLE}.{sorted(unknown)[0]} }}}}"'
        )
    return source


class CustomMapping:
    """One `webhooks.mappings.<name>`: each field a template over the body."""

    def __init__(
        self,
        name: str,
        fields: Mapping[str, str | None],
        labels: Mapping[str, str],
        resolved_when: Iterable[str],
    ) -> None:
        self.name = name
        self.source = f"custom/{name}"
        self._fields = {key: _ENV.from_string(text) for key, text in fields.items() if text}
        self._labels = {key: _ENV.from_string(text) for key, text in labels.items()}
        self._resolved = {word.strip().lower() for word in resolved_when}

    def parse(self, body: object) -> list[Alert]:
        if not isinstance(body, dict):
            raise PayloadError(f"payload must be a JSON object, got {type(body).__name__}")
        values = {key: self._render(key, template, body) for key, template in self._fields.items()}
        title = values.get("title")
        if not title:
            raise PayloadError(
                f"webhooks.mappings.{self.name}.title rendered empty for this body",
                field="title",
            )
        try:
            at = parse_optional_timestamp(values.get("timestamp"))
        except ValueError as exc:
            raise PayloadError(f"timestamp: {exc}", field="timestamp") from None
        labels = {key: self._render(f"labels.{key}", t, body) for key, t in self._labels.items()}
        key = values.get("dedup_key") or normalize.stable_key(title, values.get("service"))
        return [
            normalize.alert(
                self.source,
                f"{self.source}:{key}",
                fingerprint=key,
                title=normalize.shorten(title),
                resolved=(values.get("status") or "").lower() in self._resolved,
                raw_severity=values.get("severity"),
                at=at,
                service=values.get("service"),
                labels=labels,
                annotations={"description": values.get("description")},
                url=values.get("url"),
            )
        ]

    def _render(self, field: str, template: Template, body: dict[str, object]) -> str:
        try:
            return template.render(payload=body).strip()
        except TemplateError as exc:
            raise PayloadError(
                f"webhooks.mappings.{self.name}.{field}: {exc.message}", field=field
            ) from None
