"""Mask secrets before any text reaches an LLM provider or leaves the bot.

Each distinct secret gets a stable placeholder (`[REDACTED:aws_key#1]`) for the Redactor's
lifetime, so the model can refer to it. Unlike k8sgpt, a placeholder is put back only where its
secret was already in front of the same audience (`restore(text, visible)`): never in what the
model wrote, and never from a tool's output, which chat readers did not see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

# Values already masked must not be masked again (text may pass through twice).
_NOT_MASKED = r"(?!\[REDACTED:)"
_SECRET_KEY = r"\b[\w.-]*(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|token)"
_SECRET_VALUE = _NOT_MASKED + r"(?P<secret>[^\s\"'&,;}\]]{3,})"


@dataclass(frozen=True, slots=True)
class _Pattern:
    kind: str
    regex: re.Pattern[str]

    def secret_span(self, match: re.Match[str]) -> tuple[int, int]:
        """The part of the match to hide: the `secret` group when there is one."""
        if "secret" in self.regex.groupindex and match.group("secret") is not None:
            return match.span("secret")
        return match.span()


def _p(kind: str, pattern: str, flags: int = 0) -> _Pattern:
    return _Pattern(kind, re.compile(pattern, flags))


# Most specific first: a private key block or a URL may contain text the later ones match.
_BUILTIN = (
    _p(
        "private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
    ),
    _p(
        "url_password", r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:" + _NOT_MASKED + r"(?P<secret>[^\s@/]+)@"
    ),
    _p("slack_webhook", r"hooks\.slack\.com/services/(?P<secret>[A-Za-z0-9_/-]{8,})"),
    _p("bearer", r"\bbearer\s+" + _NOT_MASKED + r"(?P<secret>[A-Za-z0-9._~+/-]{8,}=*)", re.I),
    _p("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"),
    _p("aws_key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    _p(
        "aws_secret",
        r"aws_secret_access_key[\"']?\s*[=:]\s*[\"']?(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        re.I,
    ),
    _p("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}|\bxapp-[A-Za-z0-9-]{10,}"),
    _p("github_token", r"\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{20,}"),
    _p("openai_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    # key=value anywhere; "key": "value" (JSON); key: value only at a line start (YAML),
    # since prose such as "read db password: open /vault/..." is not an assignment.
    _p("secret", _SECRET_KEY + r"[\"']?\s*=\s*[\"']?" + _SECRET_VALUE, re.I),
    _p("secret", _SECRET_KEY + r"[\"']?\s*:\s*[\"']" + _SECRET_VALUE, re.I),
    _p("secret", r"^[ \t-]*" + _SECRET_KEY + r":[ \t]*" + _SECRET_VALUE, re.I | re.M),
)

_PLACEHOLDER = re.compile(r"\[REDACTED:[a-z_]+#\d+\]")


class Redactor:
    """Replaces secrets with stable placeholders; `restore` reverses it for model answers."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        extra = tuple(_p("custom", pattern) for pattern in extra_patterns)
        self._patterns = extra + _BUILTIN
        self._by_secret: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def redact(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.regex.sub(partial(self._mask, pattern), text)
        return text

    def restore(self, text: str, visible: str) -> str:
        """Put back the secrets of `text`'s placeholders that occur in `visible` (text its
        readers have already seen); every other placeholder stays."""

        def put_back(m: re.Match[str]) -> str:
            secret = self._by_placeholder.get(m.group())
            return secret if secret is not None and secret in visible else m.group()

        return _PLACEHOLDER.sub(put_back, text)

    def _mask(self, pattern: _Pattern, match: re.Match[str]) -> str:
        start, end = pattern.secret_span(match)
        whole_start = match.start()
        secret = match.string[start:end]
        placeholder = self._placeholder(pattern.kind, secret)
        text = match.group()
        return text[: start - whole_start] + placeholder + text[end - whole_start :]

    def _placeholder(self, kind: str, secret: str) -> str:
        known = self._by_secret.get((kind, secret))
        if known is not None:
            return known
        self._counts[kind] = self._counts.get(kind, 0) + 1
        placeholder = f"[REDACTED:{kind}#{self._counts[kind]}]"
        self._by_secret[(kind, secret)] = placeholder
        self._by_placeholder[placeholder] = secret
        return placeholder
