"""Host names that fail to resolve, as resolvers and HTTP clients report them (curl, urllib3,
requests, Node, Go, Java, glibc), with the line that says so."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.offline import kube
from agent.types import Evidence, Observations

_RESOLVE = re.compile(
    r"Failed to resolve '(?P<a>[\w.-]+)'|Could not resolve host: (?P<b>[\w.-]+)|"
    r"getaddrinfo (?:ENOTFOUND|EAI_AGAIN) (?P<c>[\w.-]+)|lookup (?P<d>[\w.-]+)(?: on [\d.:]+)?: "
    r"[^\n]{0,80}?(?:no such host|i/o timeout|server misbehaving)|UnknownHostException: (?P<e>[\w.-]+)|"
    r"Name or service not known[^\n]{0,40}host='(?P<f>[\w.-]+)'|"
    r"could not translate host name \"(?P<g>[\w.-]+)\""
)
# The resolver answered nothing in time (no DNS reachable), rather than "no such name".
_TEMPORARY = re.compile(
    r"Try again|EAI_AGAIN|Temporary failure in name resolution|i/o timeout|"
    r"server misbehaving|timed out",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Unresolved:
    host: str
    line: kube.Line
    start: int
    end: int

    @property
    def temporary(self) -> bool:
        return bool(_TEMPORARY.search(self.line.text))

    @property
    def evidence(self) -> Evidence:
        return self.line.evidence(self.start, self.end)


def unresolved(obs: Observations) -> list[Unresolved]:
    """Each line naming a host that did not resolve, in order (one per line)."""
    found: list[Unresolved] = []
    for line in kube.lines_of(obs):
        if m := _RESOLVE.search(line.text):
            host = next(g for g in m.groups() if g)
            found.append(Unresolved(host, line, *m.span()))
    return found


def most_named(found: list[Unresolved]) -> str | None:
    counts: dict[str, int] = {}
    for u in found:
        counts[u.host] = counts.get(u.host, 0) + 1
    return max(counts, key=lambda h: counts[h]) if counts else None
