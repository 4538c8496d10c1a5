"""Signal analysis shared by the offline rules: log patterns quoted exactly, metric shapes
against their own baseline, where a stack trace points in the code, and deploy timing."""

from __future__ import annotations

import re
import statistics
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import accumulate, islice, pairwise

from agent.types import Evidence, IncidentContext, Observations
from integrations.observability.model import Deploy, ErrorIssue, HealthResult, Point

QUOTE_MAX = 200
PHRASE_MAX = 120
RECENT_DEPLOY_MIN = 60  # a deploy this fresh is a suspect for anything that started after it
_ONSET_SLACK_MIN = 3  # sampling and clock skew between the deploy record and the metrics
_CAUSAL_WINDOW_MIN = 30  # a failure starting later than this after a deploy is not blamed on it

# ---------------------------------------------------------------------------- formatting


def fmt(value: float) -> str:
    """A metric value as people write it: 4712, 97.3, 0.0016."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2g}" if abs(value) < 0.1 else f"{value:.2f}".rstrip("0").rstrip(".")


def fmt_ratio(ratio: float) -> str:
    if ratio == float("inf"):
        return "new"
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def fmt_minutes(minutes: float) -> str:
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.0f} h"
    return f"{minutes / 1440:.0f} days"


# ---------------------------------------------------------------------------- log patterns


@dataclass(frozen=True, slots=True)
class Pattern:
    """A failure phrase of some real software; `weight` is what one match adds to a score.

    `keys` are lower-case literals, one per alternative, of which a matching line must contain
    one: a plain substring test rules most logs out far faster than the regex could.
    """

    name: str
    regex: re.Pattern[str]
    weight: float
    keys: tuple[str, ...] | None


def pattern(name: str, regex: str, weight: float, *, ignore_case: bool = False) -> Pattern:
    flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
    keys = [_literal(branch) for branch in _branches(regex)]
    usable = all(len(k) >= _MIN_KEY for k in keys)
    return Pattern(name, re.compile(regex, flags), weight, tuple(keys) if usable else None)


_MIN_KEY = 3


def _branches(regex: str) -> list[str]:
    """The top-level alternatives of a regex."""
    branches, depth, start, i = [], 0, 0, 0
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            i += 1
        elif c == "[":
            i = _class_end(regex, i)
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            branches.append(regex[start:i])
            start = i + 1
        i += 1
    return [*branches, regex[start:]]


def _class_end(regex: str, i: int) -> int:
    """Index of the `]` closing the character class opened at `i`."""
    j = i + 1 + (regex[i + 1 : i + 2] == "^")
    j += regex[j : j + 1] == "]"
    while j < len(regex) and regex[j] != "]":
        j += 2 if regex[j] == "\\" else 1
    return j


def _literal(branch: str) -> str:
    """The longest run of characters every match of `branch` contains, lower-cased."""
    runs: list[str] = []
    run: list[str] = []
    depth, i = 0, 0
    while i < len(branch):
        c = branch[i]
        token: str | None = None
        if c == "\\":
            following = branch[i + 1 : i + 2]
            token = None if following.isalnum() else following
            i += 1
        elif c == "[":
            i = _class_end(branch, i)
        elif c in "()":
            depth += 1 if c == "(" else -1
        elif c in "?*{":
            optional = c != "{" or branch[i + 1 : i + 2] == "0"
            if optional and run:
                run.pop()  # the quantified character may be absent
            i = branch.index("}", i) if c == "{" else i
        elif c not in ".^$+":
            token = c
        if token is None or depth:
            runs.append("".join(run))
            run = []
        else:
            run.append(token)
        i += 1
    runs.append("".join(run))
    return max(runs, key=len).lower()


@dataclass(frozen=True, slots=True)
class Hit:
    """The first log line a pattern matched."""

    pattern: Pattern
    index: int
    line: str
    start: int
    end: int
    tool: str = "logs"

    @property
    def quote(self) -> str:
        return clip(self.line, self.start, self.end)

    @property
    def evidence(self) -> Evidence:
        return Evidence(tool=self.tool, quote=self.quote)

    @property
    def text(self) -> str:
        return self.line[self.start : self.end]

    @property
    def phrase(self) -> str:
        """The line from the match on, as far as a short sentence goes."""
        return self.line[self.start :].strip()[:PHRASE_MAX].rstrip()


@dataclass(frozen=True, slots=True)
class _Joined:
    """A log joined into one text: each pattern then scans it in one C-level search instead of
    one search per line; `starts` maps a match back to its line."""

    lines: tuple[str, ...]
    text: str
    lowered: str
    starts: list[int]


@lru_cache(maxsize=8)  # the rules of one diagnosis scan the same log many times
def _joined(lines: tuple[str, ...]) -> _Joined:
    text = "\n".join(lines)
    starts = list(accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    return _Joined(lines, text, text.lower(), starts)


def _matches(log: _Joined, p: Pattern) -> Iterator[tuple[int, re.Match[str]]]:
    """(line index, match on that line) for each line the pattern matches, in order."""
    if p.keys is not None and not any(k in log.lowered for k in p.keys):
        return
    position = 0
    while position <= len(log.text) and (found := p.regex.search(log.text, position)):
        index = bisect_right(log.starts, found.start()) - 1
        following = index + 1
        position = log.starts[following] if following < len(log.starts) else len(log.text) + 1
        # Confirmed on the line itself, so that no match spans two lines.
        if match := p.regex.search(log.lines[index]):
            yield index, match


def find(lines: Sequence[str], patterns: Iterable[Pattern], tool: str = "logs") -> list[Hit]:
    """One hit per matching pattern, heaviest first: of its first few matching lines, the one
    that shows the phrase best (the message rather than echoed source, whole not clipped)."""
    log = _joined(tuple(lines))
    hits: list[Hit] = []
    for p in patterns:
        candidates = (
            Hit(p, i, log.lines[i], *m.span(), tool) for i, m in islice(_matches(log, p), _TRIES)
        )
        if best := min(candidates, key=_rank, default=None):
            hits.append(best)
    hits.sort(key=lambda h: -h.pattern.weight)
    return hits


def lines_matching(lines: Sequence[str], p: Pattern) -> list[int]:
    """Indexes of every line the pattern matches."""
    return [i for i, _ in _matches(_joined(tuple(lines)), p)]


_TRIES = 5  # matching lines considered when choosing the one to quote


# A runtime printing the source line that threw (Node, Python tracebacks), not the error.
_SOURCE_ECHO = re.compile(r"^\s*(throw |raise |panic\(|return |\S+ = )")


def _rank(hit: Hit) -> int:
    """0 for a line that is the message and fits a quote; higher is a worse line to quote."""
    return 2 * bool(_SOURCE_ECHO.match(hit.line)) + (len(hit.line.strip()) > QUOTE_MAX)


def observed(obs: Observations, patterns: Sequence[Pattern]) -> list[Hit]:
    """Hits in the logs, then in Kubernetes state and error-tracker issue titles for phrases the
    logs do not show."""
    hits = find(obs.logs, patterns)
    for lines, tool in ((obs.kubernetes, "kubernetes"), ([i.title for i in obs.errors], "errors")):
        seen = {h.pattern.name for h in hits}
        hits += find(lines, [p for p in patterns if p.name not in seen], tool=tool)
    hits.sort(key=lambda h: -h.pattern.weight)
    return hits


def quotes(hits: Iterable[Hit], limit: int) -> list[Evidence]:
    """Evidence for the first `limit` hits on different lines (one line makes one quote)."""
    kept: dict[tuple[str, int], Hit] = {}
    for h in hits:
        kept.setdefault((h.tool, h.index), h)
    return [h.evidence for h in list(kept.values())[:limit]]


def weight(hits: Iterable[Hit], cap: float) -> float:
    return min(cap, sum(h.pattern.weight for h in hits))


_LEADING_TIMESTAMP = re.compile(
    r"^\s*\[?\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
    r"(?:Z|[+-]\d{2}:?\d{2}| UTC)?\]?\s*"
)


def clip(line: str, start: int = 0, end: int = 0) -> str:
    """An exact substring of `line` of at most QUOTE_MAX characters that keeps [start, end)."""
    text = line.strip()
    if len(text) <= QUOTE_MAX:
        return text
    offset = len(line) - len(line.lstrip())
    start, end = max(0, start - offset), max(0, end - offset)
    stamp = _LEADING_TIMESTAMP.match(text)
    for begin in (0, stamp.end() if stamp else 0, _word_start(text, start - 60, start), start):
        if end <= begin + QUOTE_MAX:
            return text[begin : begin + QUOTE_MAX].strip()
    return text[start : start + QUOTE_MAX].strip()


def _word_start(text: str, at: int, limit: int) -> int:
    """The first word boundary at or after `at` (not past `limit`), so a quote starts cleanly."""
    if at <= 0:
        return 0
    space = text.find(" ", at, limit)
    return space + 1 if space >= 0 else at


# ---------------------------------------------------------------------------- the alert


_ALERT_FIELDS = ("alertname", "reason", "summary", "description", "message")


def alert_texts(ctx: IncidentContext) -> list[str]:
    """The alert's own words: title, alertname, summary, description, reason."""
    texts = [ctx.title]
    for alert in ctx.alerts:
        texts.append(alert.title)
        texts.extend(alert.labels.get(k, "") for k in _ALERT_FIELDS)
        texts.extend(alert.annotations.get(k, "") for k in _ALERT_FIELDS)
    texts.extend(ctx.labels.get(k, "") for k in _ALERT_FIELDS)
    texts.extend(ctx.annotations.get(k, "") for k in _ALERT_FIELDS)
    return list(dict.fromkeys(t for t in texts if t))


def alert_hit(ctx: IncidentContext, regex: re.Pattern[str]) -> Evidence | None:
    """The alert text matching `regex`, quoted, or None."""
    for text in alert_texts(ctx):
        match = regex.search(text)
        if match:
            return Evidence(tool="alert", quote=clip(text, *match.span()))
    return None


def alert_label(ctx: IncidentContext, *names: str) -> str | None:
    for labels in (ctx.labels, *(a.labels for a in ctx.alerts)):
        for name in names:
            if labels.get(name):
                return labels[name]
    return None


# ---------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Shape:
    """A metric series judged against its own baseline (the first third of the window)."""

    name: str
    times: tuple[float, ...]
    values: tuple[float, ...]

    @cached_property
    def baseline(self) -> float:
        """The lower half of the first third: still the old level if a change began early."""
        head = sorted(self.values[: max(1, len(self.values) // 3)])
        return statistics.fmean(head[: max(1, (len(head) + 1) // 2)])

    @cached_property
    def current(self) -> float:
        return statistics.median(self.values[-3:])

    @cached_property
    def peak(self) -> float:
        return max(self.values)

    @property
    def ratio(self) -> float:
        if self.baseline > 0:
            return self.current / self.baseline
        return float("inf") if self.current > 0 else 1.0

    @cached_property
    def rise_fraction(self) -> float:
        """Share of the steps up to the peak that go up: near 1 for steady growth."""
        head = self.values[: self.values.index(self.peak) + 1]
        steps = len(head) - 1
        return sum(b > a for a, b in pairwise(head)) / steps if steps else 0.0

    @property
    def grows(self) -> bool:
        """Steady growth over most of the window (a leak's shape), even if it reset at the end."""
        head = self.values[: self.values.index(self.peak) + 1]
        rise = self.peak - head[0]
        return len(head) >= 5 and self.rise_fraction >= 0.7 and rise >= 0.15 * abs(head[0] or 1)

    @property
    def reset(self) -> bool:
        """It fell sharply after its peak, as memory does when the process is killed."""
        return self.values.index(self.peak) < len(self.values) - 1 and self.values[-1] < (
            0.6 * self.peak
        )

    def stepped(self, factor: float = 2.0, floor: float = 0.0) -> bool:
        """The recent level is `factor` times the baseline and above `floor`."""
        return self.current >= floor and self.ratio >= factor

    def onset_minutes_ago(self) -> float | None:
        """How long ago the series moved to its new level (half-way from baseline), if it did."""
        threshold = (self.baseline + self.current) / 2
        if self.current <= self.baseline:
            return None
        for i, value in enumerate(self.values):
            rest = self.values[i:]
            if value >= threshold and sum(v >= threshold for v in rest) >= 0.8 * len(rest):
                return (self.times[-1] - self.times[i]) / 60
        return None

    def rise_start_minutes_ago(self) -> float:
        """When the climb to the peak began: the last point before the peak still near the low."""
        head = self.values[: self.values.index(self.peak) + 1]
        floor = min(head) + 0.1 * (self.peak - min(head))
        start = max(i for i, v in enumerate(head) if v <= floor)
        return (self.times[-1] - self.times[start]) / 60

    def first_rise_minutes_ago(self) -> float | None:
        """When the series first went above its starting value (a counter's first increment)."""
        i = next((i for i, v in enumerate(self.values) if v > self.values[0]), None)
        return None if i is None else (self.times[-1] - self.times[i]) / 60

    def describe(self) -> str:
        """'requests_per_second 4712 vs baseline 1450 (3.2x)'."""
        return (
            f"{self.name} {fmt(self.current)} vs baseline {fmt(self.baseline)} "
            f"({fmt_ratio(self.ratio)})"
        )

    def describe_growth(self) -> str:
        text = f"{self.name} rose steadily from {fmt(self.values[0])} to {fmt(self.peak)}"
        if self.reset:
            text += f", then fell to {fmt(self.values[-1])} (process restarted)"
        return text

    @property
    def evidence(self) -> Evidence:
        return Evidence(tool="metrics", quote=self.describe())


def shape(name: str, points: Sequence[Point]) -> Shape | None:
    if not points:
        return None
    ordered = sorted(points)
    return Shape(name, tuple(float(t) for t, _ in ordered), tuple(float(v) for _, v in ordered))


# Metric families, by the conventional names Prometheus, CloudWatch and APMs use.
MEMORY = re.compile(r"mem|heap|rss", re.IGNORECASE)
CPU = re.compile(r"cpu", re.IGNORECASE)
REQUESTS = re.compile(
    r"(^|_)requests?(_per_(sec|second|min|minute)|_total|_count|_rate)?$|^(rps|qps)$|"
    r"requests?_?per_?(sec|second|min)|request_?count|throughput|"
    r"messages_(in|processed|consumed)|events_(in|received|per)|invocations",
    re.IGNORECASE,
)
# Request-like names that measure trouble or size, not load.
_NOT_LOAD = re.compile(
    r"pending|waiting|queued|fail|error|dropp|reject|throttl|latency|duration|size|bytes",
    re.IGNORECASE,
)
OWN_ERRORS = re.compile(
    r"^(http_|request_|api_|app_)?(5xx_|server_)?errors?_(ratio|rate|pct|percent)$|^http_5xx",
    re.IGNORECASE,
)
DEPENDENCY_ERRORS = re.compile(
    r"^(?P<dep>[a-z0-9][\w-]*?)_(upstream_)?(errors?|failures?|5xx)_(ratio|rate|pct)$",
    re.IGNORECASE,
)
LATENCY = re.compile(r"latency|duration|response_time", re.IGNORECASE)
REPLICAS = re.compile(r"replica|task_count|instances", re.IGNORECASE)
RESTARTS = re.compile(r"restart", re.IGNORECASE)
# Series of a database or cache the service talks to, not of the service itself.
_BACKING_STORE = re.compile(r"^(rds|db|database|postgres|pg|mysql|redis|cache|elasticache)_")


def metric(
    obs: Observations,
    family: re.Pattern[str],
    *,
    own: bool = True,
    exclude: re.Pattern[str] | None = None,
) -> Shape | None:
    """The service's series of this family (the shortest matching name is the canonical one)."""
    names = [
        n
        for n in obs.metrics
        if family.search(n)
        and obs.metrics[n]
        and not (own and _BACKING_STORE.match(n))
        and not (exclude and exclude.search(n))
    ]
    canonical = min(names, key=len, default=None)
    return shape(canonical, obs.metrics[canonical]) if canonical else None


def latency(obs: Observations) -> Shape | None:
    """The latency series that rose most against its own baseline: with one series per route
    or endpoint (`latency_p95_ms{route="/checkout"}`), the one that got slow, not the first."""
    shapes = [m for m in metrics_named(obs, LATENCY) if not _BACKING_STORE.match(m.name)]
    return max(shapes, key=lambda m: (m.ratio, -len(m.name)), default=None)


def requests(obs: Observations) -> Shape | None:
    """The request rate; a monotonic counter (`..._total`) is turned into a per-second rate."""
    counter = metric(obs, REQUESTS, exclude=_NOT_LOAD)
    if (
        counter is None
        or not counter.name.endswith(("_total", "_count"))
        or len(counter.values) < 3
    ):
        return counter
    pairs = list(zip(counter.times, counter.values, strict=True))
    if any(b < a for (_, a), (_, b) in pairwise(pairs)):
        return counter
    rates = [(t1, (v1 - v0) / (t1 - t0)) for (t0, v0), (t1, v1) in pairwise(pairs) if t1 > t0]
    return shape(f"rate({counter.name})", rates)


def metrics_named(obs: Observations, family: re.Pattern[str]) -> list[Shape]:
    return [s for n, p in obs.metrics.items() if family.search(n) and (s := shape(n, p))]


def is_percent(s: Shape) -> bool:
    return bool(re.search(r"pct|percent|utili[sz]ation|ratio_100", s.name, re.IGNORECASE))


def near_limit(s: Shape, level: float) -> bool:
    """A percentage that peaked at `level` or more; other units have no known limit."""
    return not is_percent(s) or s.peak >= level


def saturated(s: Shape | None, level: float = 90.0) -> bool:
    return s is not None and is_percent(s) and s.current >= level


# ---------------------------------------------------------------------------- stack traces

_PY_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_JAVA_FRAME = re.compile(r"^\s*at ((?:[\w$]+\.)+[\w$<>]+)\(([^)]*)\)")
_NODE_FRAME = re.compile(
    r"^\s*at (?:(\S+) \()?((?:node:|file:|/|[A-Za-z]:\\)[^()]*):(\d+):\d+\)?\s*$"
)
_GO_FILE = re.compile(r"^\s+\S+\.go:\d+")
_GO_CALL = re.compile(r"^(\S.*)\([^()]*\)$")
_TRACE_MARK = re.compile(
    r"^(Traceback \(most recent call last\)|goroutine \d+ \[|panic\(|\s*\.\.\. \d+ more|Caused by:)"
)
_PY_LIBRARY = re.compile(r"site-packages|dist-packages|/lib/python|<frozen|^/usr/lib/")
_JAVA_LIBRARY = re.compile(
    r"^(java|javax|jakarta|jdk|sun|com\.sun|kotlin|kotlinx|scala|akka|reactor|okhttp3|"
    r"org\.(springframework|apache|hibernate|eclipse|glassfish|postgresql|junit|jboss)|"
    r"com\.(zaxxer|fasterxml|mysql|google|netflix)|io\.(netty|micronaut|quarkus|grpc|vertx))\."
)
_NODE_LIBRARY = re.compile(r"node:internal|node_modules|^internal/")
_GO_LIBRARY = re.compile(
    r"^(golang\.org|google\.golang\.org|go\.uber\.org|gopkg\.in|go\.opentelemetry\.io|"
    r"github\.com/(gin-gonic|go-chi|labstack|gorilla|jackc|lib/pq|grpc-ecosystem|aws/aws-sdk-go))"
)


@dataclass(frozen=True, slots=True)
class Frame:
    """The innermost frame of the service's own code in one stack trace."""

    index: int
    quote: str
    where: str  # e.g. "normalize_sku (/app/catalog/normalize.py:47)"
    code: str | None = None  # the source line, where the trace prints it (Python)

    @property
    def evidence(self) -> Evidence:
        return Evidence(tool="logs", quote=self.quote)

    def describe(self) -> str:
        return f"{self.where}: `{self.code}`" if self.code else self.where


def _frame_at(lines: Sequence[str], i: int) -> tuple[Frame | None, bool]:
    """(the app frame on line i or None, whether line i belongs to a stack trace at all)."""
    line = lines[i]
    if m := _PY_FRAME.search(line):
        path, number, func = m.groups()
        if _PY_LIBRARY.search(path):
            return None, True
        following = lines[i + 1].strip() if i + 1 < len(lines) else ""
        code = following if following and not _PY_FRAME.search(following) else None
        return Frame(i, clip(line), f"{func} ({path}:{number})", code), True
    if m := _JAVA_FRAME.match(line):
        return (None if _JAVA_LIBRARY.match(m[1]) else Frame(i, clip(line), m[1])), True
    if m := _NODE_FRAME.match(line):
        func, path, number = m[1] or "<anonymous>", m[2], m[3]
        if _NODE_LIBRARY.search(path):
            return None, True
        return Frame(i, clip(line), f"{func} ({path}:{number})"), True
    if i + 1 < len(lines) and _GO_FILE.match(lines[i + 1]) and (m := _GO_CALL.match(line.strip())):
        func = m[1]
        app = func.startswith("main.") or (
            "." in func.split("/", 1)[0] and "/" in func and not _GO_LIBRARY.match(func)
        )
        where = f"{func.rsplit('/', 1)[-1]} ({lines[i + 1].strip().split(' ')[0]})"
        return (Frame(i, clip(line), where) if app else None), True
    trace_line = bool(
        _TRACE_MARK.match(line)
        or _GO_FILE.match(line)
        or (i > 0 and _PY_FRAME.search(lines[i - 1]))
    )
    return None, trace_line


@dataclass(frozen=True, slots=True)
class _Trace:
    start: int
    end: int
    frame: Frame


def _traces(lines: Sequence[str]) -> list[_Trace]:
    traces: list[_Trace] = []
    start: int | None = None
    frames: list[Frame] = []

    def close(end: int) -> None:
        if start is not None and frames:
            # Python prints the innermost call last; the JVM, Go and V8 print it first.
            python = _PY_FRAME.search(frames[0].quote) is not None
            traces.append(_Trace(start, end, frames[-1] if python else frames[0]))

    for i in range(len(lines)):
        frame, in_trace = _frame_at(lines, i)
        if in_trace:
            if start is None:
                start, frames = i, []
            if frame:
                frames.append(frame)
        elif start is not None:
            close(i - 1)
            start = None
    close(len(lines) - 1)
    return traces


def frame_near(obs: Observations, hits: Sequence[Hit]) -> Frame | None:
    """The service's own frame in the stack trace next to the first hit, if it is in the logs."""
    if not hits or hits[0].tool != "logs":
        return None
    return app_frame(obs.logs, hits[0].index)


def app_frame(lines: Sequence[str], near: int, reach: int = 30) -> Frame | None:
    """The service's own innermost frame in the stack trace closest to line `near`."""
    best: tuple[int, Frame] | None = None
    for trace in _traces(lines):
        if trace.start > near:
            distance = trace.start - near
        elif near > trace.end:
            distance = near - trace.end
        else:
            distance = 0
        if distance <= reach and (best is None or distance < best[0]):
            best = (distance, trace.frame)
    return best[1] if best else None


# ---------------------------------------------------------------------------- deploys, issues


def deploy_quote(d: Deploy) -> str:
    return f"{d.sha} '{d.message}' by {d.author}, {fmt_minutes(d.minutes_ago)} ago"


def deploy_evidence(d: Deploy) -> Evidence:
    return Evidence(tool="deploys", quote=deploy_quote(d))


def recent_deploy(obs: Observations, within_min: float = RECENT_DEPLOY_MIN) -> Deploy | None:
    fresh = [d for d in obs.deploys if 0 <= d.minutes_ago <= within_min]
    return min(fresh, key=lambda d: d.minutes_ago) if fresh else None


def started_after(deploy: Deploy, onset_minutes_ago: float) -> bool:
    """Whether something that began `onset_minutes_ago` began soon after `deploy`."""
    lag = deploy.minutes_ago - onset_minutes_ago
    return -_ONSET_SLACK_MIN <= lag <= _CAUSAL_WINDOW_MIN


def predates(deploy: Deploy, onset_minutes_ago: float | None) -> bool:
    """Whether trouble that began `onset_minutes_ago` was already there before `deploy`."""
    return (
        onset_minutes_ago is not None and onset_minutes_ago > deploy.minutes_ago + _ONSET_SLACK_MIN
    )


def new_issues(obs: Observations, deploy: Deploy) -> list[ErrorIssue]:
    """Error-tracker issues first seen shortly after `deploy`: new error signatures."""
    return [
        i
        for i in obs.errors
        if i.first_seen_minutes_ago is not None and started_after(deploy, i.first_seen_minutes_ago)
    ]


def issue_evidence(issue: ErrorIssue) -> Evidence:
    seen = (
        f", first seen {fmt_minutes(issue.first_seen_minutes_ago)} ago"
        if issue.first_seen_minutes_ago is not None
        else ""
    )
    return Evidence(tool="errors", quote=f"{clip(issue.title)} ({issue.count} events{seen})")


def matching_issues(obs: Observations, regex: re.Pattern[str]) -> list[ErrorIssue]:
    return [i for i in obs.errors if regex.search(i.title)]


def health_quote(h: HealthResult) -> str:
    status = f"HTTP {h.status}" if h.status is not None else "unreachable"
    return clip(f"{status}: {h.body}")


def health_evidence(obs: Observations) -> Evidence | None:
    return Evidence(tool="health", quote=health_quote(obs.health)) if obs.health else None
