"""The deterministic intent grammar: one operator chat message to one `Intent`, without an LLM.

It answers when no LLM does, and it is the check on what an LLM says an operator meant.
"""

from __future__ import annotations

import difflib
import html
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.types import ActionKind, Intent, IntentKind

MAX_CHARS = 2000
"""Only this much of a message is read: commands are short, and longer text is a paste."""

ALL_SERVICES = "*"
"""`Intent.service` for "all services" / "everything": never a real service; the router refuses."""

# --- word lists ---------------------------------------------------------------------------

_SEPARATORS = frozenset({",", ";", ".", "!", "?"})
_NEGATIONS = frozenset({"not", "no", "never", "without"})
_HEDGES = frozenset({"should", "will", "might", "may", "hopefully", "almost", "nearly"})
# A verb right after one of these is a noun about the past: "the restart fixed it".
_DETERMINERS = frozenset(
    {"the", "that", "this", "last", "previous", "prior", "earlier", "first"}
    | {"my", "our", "your", "their", "his", "her", "its"}
)
# A verb right before one of these is the subject of a report: "restart did not help".
_REPORT_WORDS = frozenset(
    {"did", "does", "do", "is", "was", "were", "will", "would", "should", "could", "might"}
    | {"may", "has", "had", "have", "not", "worked", "failed", "fixed", "helped", "succeeded"}
    | {"completed", "finished", "done", "went", "seems", "seemed", "looks", "looked", "caused"}
    | {"broke", "made", "happened", "timed", "took", "hung"}
)
_SELF = frozenset({"it", "this", "that", "them", "these", "those", "here"})
_ALL = frozenset({"all", "everything", "every", "everyone", "anything", ALL_SERVICES})
_REPLICA_NOUNS = frozenset(
    {"replica", "replicas", "pod", "pods", "instance", "instances", "container", "containers"}
    | {"node", "nodes", "copies", "worker", "workers", "task", "tasks"}
)
# Words between a verb and its target that name nothing: "restart the service now".
_SKIP = frozenset(
    {"the", "a", "an", "up", "out", "down", "back", "to", "for", "on", "in", "of", "at"}
    | {"service", "services", "app", "application", "svc", "deploy", "deployment", "deploys"}
    | {"release", "rollout", "change", "version", "build", "commit", "last", "latest"}
    | {"previous", "prior", "recent", "now", "again", "asap", "quick", "fast", "right", "away"}
    | {"too", "also", "then", "first", "once", "more", "real", "same", "today", "tonight"}
    | {"instead", "already", "anyway", "maybe", "just", "bad", "broken", "whole"}
    | _REPLICA_NOUNS
)
_STOP = frozenset(
    {"and", "or", "but", "because", "so", "if", "when", "since", "as", "i", "we", "you"}
    | {"me", "us", "with", "after", "before", "while", "until", "by", "is", "are", "was"}
)
_QUESTION_WORDS = frozenset(
    {"what", "why", "how", "is", "are", "was", "were", "did", "does", "when", "which", "who"}
    | {"where", "whose", "should", "shall", "has", "have", "can", "could", "would", "am"}
)
_ASK_VERBS = frozenset({"tell", "explain", "show", "describe", "summarize", "summarise"})
_ASK_VERBS |= {"check", "find", "give", "look"}

_APPROVE_WORDS = frozenset(
    {"approve", "approved", "approving", "lgtm", "sgtm", "yes", "yep", "yup", "yeah", "ya", "y"}
    | {"sure", "ok", "okay", "do", "it", "go", "ahead", "for", "ship", "proceed", "confirm"}
    | {"confirmed", "accept", "accepted", "granted", "let", "us", "that", "this"}
)
_APPROVE_RE = re.compile(
    r"\b(?:approved?|approving|lgtm|sgtm|yes|yep|yup|yeah|y|proceed|confirm(?:ed)?"
    r"|accept(?:ed)?|granted|go ahead|do it|ship it|go for it)\b"
)
_DENY_WORDS = frozenset(
    {"no", "nope", "nah", "n", "deny", "denied", "reject", "rejected", "cancel", "cancelled"}
    | {"canceled", "abort", "aborted", "stop", "do", "not", "hold", "off", "on", "never"}
    | {"mind", "nevermind", "wait", "it", "that", "this", "yet", "veto", "vetoed", "decline"}
    | {"declined"}
)
_DENY_RE = re.compile(
    r"\b(?:no|nope|nah|n|deny|denied|reject(?:ed)?|cancel(?:l?ed)?|abort(?:ed)?|stop"
    r"|veto(?:ed)?|declined?|do not|not yet|hold off|hold on|never ?mind)\b"
)
_DENY_VERBS = frozenset({"cancel", "abort", "stop", "reject", "deny", "veto", "decline"})

# Targets of typo correction: command words of five letters or more. Shorter words ("ack",
# "kick", "jira", "mute") must be typed exactly; too many real words sit one letter away.
_VOCAB = (
    "restart", "reboot", "bounce", "recycle", "rollback", "revert", "scale", "replicas",
    "instances", "snooze", "silence", "resolve", "resolved", "fixed", "acknowledge",
    "acknowledged", "diagnose", "diagnosis", "rediagnose", "investigate", "ticket", "priority",
    "approve", "approved", "reject", "cancel", "status", "stats", "incident", "incidents",
    "commands", "chaos", "enable", "disable", "oncall", "assign", "create", "deploy",
    "deployment",
)  # fmt: skip
_VOCAB_SET = frozenset(_VOCAB)
_GRAMMAR_WORDS = (
    _VOCAB_SET | _SKIP | _STOP | _SELF | _ALL | _NEGATIONS | _REPORT_WORDS | _DETERMINERS
    | _QUESTION_WORDS | _APPROVE_WORDS | _DENY_WORDS | _SEPARATORS
)  # fmt: skip
# Real words one edit away from a command word, and the suffixes of a word's own inflections
# ("restarted" is a report, not a typo of "restart").
_NOT_TYPOS = frozenset({"sale", "crate"})
_INFLECTIONS = frozenset({"s", "es", "d", "ed", "ing", "er", "ers", "ion", "ions"})

_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "twelve": "12", "twenty": "20",
}  # fmt: skip

_PRIORITY_NAMES = ("Highest", "High", "Medium", "Low", "Lowest")
_PRIORITY_WORDS = {
    "highest": "Highest", "urgent": "Highest", "critical": "Highest", "blocker": "Highest",
    "high": "High", "major": "High", "medium": "Medium", "normal": "Medium", "low": "Low",
    "minor": "Low", "lowest": "Lowest", "trivial": "Lowest",
}  # fmt: skip

# --- text clean-up ------------------------------------------------------------------------

_EMOJI_WORDS = {
    "eyes": "ack", "👀": "ack", "+1": "ack", "thumbsup": "ack", "👍": "ack",
    "raised_hand": "ack", "raising_hand": "ack", "hand": "ack", "✋": "ack", "🙋": "ack",
    "white_check_mark": "resolved", "heavy_check_mark": "resolved", "✅": "resolved",
    "✔": "resolved", "ballot_box_with_check": "resolved", "☑": "resolved",
    "-1": "deny", "thumbsdown": "deny", "👎": "deny", "x": "deny", "❌": "deny",
    "no_entry": "deny", "⛔": "deny", "octagonal_sign": "deny", "🛑": "deny",
}  # fmt: skip
_MENTION_RE = re.compile(r"<@[!&]?([A-Za-z0-9]+)(?:\|([^>]*))?>")
_LINK_RE = re.compile(r"<(?:https?://|mailto:|#|!)[^>]*>|https?://\S+")
_AT_RE = re.compile(r"(?<![\w@<!&])@([A-Za-z0-9][\w.\-]*)")
_SHORTCODE_RE = re.compile(r":([a-z0-9_+\-]*[a-z+\-][a-z0-9_+\-]*):")
_REF_RE = re.compile(r"#(\d+)\b")
_QUOTED_RE = re.compile(
    r"```.*?```|`[^`]*`|\"[^\"]*\"|(?<!\w)'[^']*'(?!\w)|^\s*(?:>|&gt;).*$", re.S | re.M
)
_CONTRACTIONS = {
    "won't": "will not", "wont": "will not", "can't": "can not", "cant": "can not",
    "shan't": "shall not", "ain't": "is not", "let's": "let us", "lets": "let us",
    "i'm": "i am", "im": "i am", "what's": "what is", "whats": "what is", "who's": "who is",
    "whos": "who is", "where's": "where is", "how's": "how is", "it's": "it is",
    "that's": "that is", "there's": "there is", "here's": "here is",
}  # fmt: skip
_CONTRACTION_RE = re.compile(
    r"\b(?:" + "|".join(re.escape(k) for k in sorted(_CONTRACTIONS, key=len, reverse=True)) + r")\b"
)
_NOT_RE = re.compile(
    r"\b(do|does|did|is|are|was|were|have|has|had|should|would|could|must|need)n'?t\b"
)
_REWRITES = (
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'d\b"), " would"),
    (re.compile(r"'s\b"), ""),
)
_TOKEN_RE = re.compile(r"[@+]?[a-z0-9][a-z0-9_.\-]*[a-z0-9]|[@+]?[a-z0-9]|[*,;!?.]")
# Applied to the joined, typo-corrected tokens.
_PHRASES = (
    (re.compile(r"\bre-?(run|diagnose|investigate|analy[sz]e)\b"), r"re\1"),
    (re.compile(r"\bon[- ]?call\b"), "oncall"),
    (re.compile(r"\broll[- ]?back\b"), "rollback"),
    (re.compile(r"\broll (it|this|that|them|[a-z][a-z0-9_.\-]*) back\b"), r"rollback \1"),
    (re.compile(r"\brolling (restart|reboot|bounce)\b"), r"\1"),
    (re.compile(r"\bsev (\d)\b"), r"sev\1"),
    (re.compile(r"\bhalf (?:an )?hour\b"), "30 minutes"),
    (re.compile(r"\bnever mind\b"), "nevermind"),
)
_LEADING_POLITE = (("hey",), ("hi",), ("hello",), ("yo",), ("ok",), ("okay",), ("so",), ("just",))
_REQUESTS = (
    ("can", "you"), ("could", "you"), ("would", "you"), ("will", "you"), ("can", "u"),
    ("could", "u"), ("go", "ahead", "and"), ("let", "us"), ("i", "need", "you", "to"),
    ("i", "want", "you", "to"),
)  # fmt: skip
_PLEASE = frozenset({"please", "pls", "plz", "kindly"})
_THANKS = frozenset({"thanks", "thx"})
_TRAILING_POLITE = (("thank", "you"), ("thank", "u"), ("ty",), ("cheers",), ("!",), (".",))


@dataclass(slots=True)
class _Message:
    """A message cleaned for matching: lower-case canonical tokens joined by single spaces."""

    tokens: list[str]
    services: frozenset[str]  # lower-case
    people: tuple[str, ...]
    mentions: dict[str, str]  # "@0" -> the user id or name the mention stood for
    request: bool  # "can you ..." / "please ...": a request even if it ends in "?"
    asks: bool  # ends in "?" or starts like a question

    line: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.line = " ".join(self.tokens)

    def index(self, match: re.Match[str]) -> int:
        """The token index where a match on `line` starts."""
        return self.line.count(" ", 0, match.start())

    def clause_before(self, i: int) -> list[str]:
        start = i
        while start > 0 and self.tokens[start - 1] not in _SEPARATORS:
            start -= 1
        return self.tokens[start:i]

    def clause_from(self, i: int) -> list[str]:
        end = i
        while end < len(self.tokens) and self.tokens[end] not in _SEPARATORS:
            end += 1
        return self.tokens[i:end]

    def words(self) -> list[str]:
        return [t for t in self.tokens if t not in _SEPARATORS]


def _one_edit(word: str, target: str) -> bool:
    """`word` is `target` with one letter dropped, added, swapped with its neighbour, or
    (in words of seven letters or more) replaced; the first letter is never the typo."""
    if word == target or word[0] != target[0]:
        return False
    if len(word) == len(target):
        diff = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        if len(diff) == 1:
            return len(target) >= 7
        i = diff[0]
        return diff == [i, i + 1] and word[i] == target[i + 1] and word[i + 1] == target[i]
    short, long = sorted((word, target), key=len)
    if len(long) - len(short) != 1:
        return False
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _is_inflection(word: str, of: str) -> bool:
    stem = of[:-1] if of.endswith("e") else of
    return word.startswith(stem) and word[len(stem) :] in _INFLECTIONS


def _correct(word: str, protected: frozenset[str]) -> str:
    """The command word `word` is a typo of, or `word` itself."""
    if len(word) < 4 or not word.isalpha() or word in _VOCAB_SET or word in protected:
        return word
    if word in _NOT_TYPOS or any(_is_inflection(word, v) for v in _VOCAB):
        return word
    return next((v for v in _VOCAB if _one_edit(word, v)), word)


def _strip_prefix(tokens: list[str], phrases: Iterable[tuple[str, ...]]) -> bool:
    for phrase in phrases:
        if tuple(tokens[: len(phrase)]) == phrase:
            del tokens[: len(phrase)]
            return True
    return False


def _strip_suffix(tokens: list[str], phrases: Iterable[tuple[str, ...]]) -> bool:
    for phrase in phrases:
        if len(tokens) >= len(phrase) and tuple(tokens[-len(phrase) :]) == phrase:
            del tokens[-len(phrase) :]
            return True
    return False


def _emoji_words(text: str) -> tuple[str, list[str]]:
    """The text without emoji, and the words the emoji stood for in order."""
    words: list[str] = []

    def shortcode(m: re.Match[str]) -> str:
        if m.group(1) in _EMOJI_WORDS:
            words.append(_EMOJI_WORDS[m.group(1)])
        return " "

    text = _SHORTCODE_RE.sub(shortcode, text)
    kept = []
    for ch in text:
        if ch in _EMOJI_WORDS:
            words.append(_EMOJI_WORDS[ch])
        if unicodedata.category(ch) in ("So", "Sk", "Cf", "Co", "Cs") or ch == "\ufe0f":
            kept.append(" ")
        else:
            kept.append(ch)
    return "".join(kept), words


def _prepare(
    text: str, services: Iterable[str], people: Iterable[str], bot_names: Iterable[str]
) -> tuple[_Message, str | None]:
    """The cleaned message and the "#42" incident reference, if any."""
    bots = {b.casefold().lstrip("@") for b in bot_names}
    mentions: dict[str, str] = {}

    def mention(ident: str, label: str | None, at_start: bool) -> str:
        if ident.casefold() in bots or (label or "").casefold() in bots or at_start:
            return " "
        key = f"@{len(mentions)}"
        mentions[key] = ident
        return f" {key} "

    s = text[:MAX_CHARS].replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    # `s` inside the lambdas is the text before that substitution, which `m` indexes.
    s = _AT_RE.sub(lambda m: mention(m.group(1), None, not s[: m.start()].strip()), s)
    s = _MENTION_RE.sub(lambda m: mention(m.group(1), m.group(2), not s[: m.start()].strip()), s)
    s = html.unescape(_QUOTED_RE.sub(" ", _LINK_RE.sub(" ", s)))
    ref = _REF_RE.search(s)
    s = _REF_RE.sub(" ", s)
    s, emoji = _emoji_words(s)
    if emoji and not re.search(r"[A-Za-z0-9]", s):
        s = " ".join(emoji)
    s = s.lower()
    for name in bots:
        s = re.sub(rf"(?<![\w@]){re.escape(name)}\b[,:]?", " ", s)
    s = _CONTRACTION_RE.sub(lambda m: _CONTRACTIONS[m.group(0)], s)
    s = _NOT_RE.sub(r"\1 not", s)
    for pattern, replacement in _REWRITES:
        s = pattern.sub(replacement, s)
    s = s.replace("'", "")

    known = frozenset(name.strip().lower() for name in services if name.strip())
    folks = tuple(p.strip() for p in people if p.strip())
    protected = known | {w.lower() for p in folks for w in p.split()}
    tokens = [_correct(t, protected) for t in _TOKEN_RE.findall(s)]
    line = " ".join(_NUMBER_WORDS.get(t, "yes" if t == "+1" else t) for t in tokens)
    for pattern, replacement in _PHRASES:
        line = pattern.sub(replacement, line)
    tokens = [t for t in line.split() if t not in _THANKS]

    request = bool(_PLEASE.intersection(tokens))
    tokens = [t for t in tokens if t not in _PLEASE]
    while _strip_suffix(tokens, _TRAILING_POLITE):
        pass
    ends_in_question = bool(tokens) and tokens[-1] == "?"
    while True:
        while tokens and tokens[0] in _SEPARATORS:
            tokens.pop(0)
        if _strip_prefix(tokens, _REQUESTS):
            request = True
        elif not _strip_prefix(tokens, _LEADING_POLITE):
            break
    while tokens and tokens[-1] in _SEPARATORS:
        tokens.pop()
    asks = ends_in_question or (bool(tokens) and tokens[0] in _QUESTION_WORDS)
    return _Message(tokens, known, folks, mentions, request, asks), ref.group(1) if ref else None


# --- finding things in a message ----------------------------------------------------------


def _known_service(msg: _Message, token: str) -> str | None:
    """The configured service `token` names, allowing a typo ("chekout")."""
    if token in msg.services:
        return token
    if len(token) < 4 or _is_word(token):
        return None
    close = difflib.get_close_matches(token, sorted(msg.services), n=1, cutoff=0.85)
    return close[0] if close else None


def _is_word(token: str) -> bool:
    """The token is part of the grammar's own vocabulary, so never a name."""
    return token in _GRAMMAR_WORDS


def _is_name(token: str) -> bool:
    """The token could name a service: an identifier that is no grammar word nor a version."""
    return (
        re.fullmatch(r"[a-z][a-z0-9_.\-]*", token) is not None
        and re.fullmatch(r"v\d[\w.\-]*", token) is None
        and not token.endswith("ly")
        and not _is_word(token)
    )


def _any_service(msg: _Message) -> str | None:
    """The first known service named anywhere in the message (typos within reason)."""
    return next((s for t in msg.tokens if (s := _known_service(msg, t))), None)


def _target(msg: _Message, start: int) -> tuple[bool, str | None]:
    """What the words from `start` name: (decided, service). "it" decides None."""
    tokens = msg.clause_from(start)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _SELF:
            return True, None
        if tok in _ALL:
            rest = [t for t in tokens[i + 1 :] if t != "the"]
            if rest and rest[0] in _REPLICA_NOUNS:  # "restart all the pods" is this service
                i += 1
                continue
            return True, ALL_SERVICES
        if tok in _SKIP:
            i += 1
            continue
        if service := _known_service(msg, tok):
            return True, service
        if _is_name(tok):
            return True, tok
        return False, None
    return False, None


def _service(msg: _Message, *starts: int) -> str | None:
    """The service the words after a verb name, else one named anywhere, else None (= "it")."""
    for start in starts:
        decided, service = _target(msg, start)
        if decided:
            return service
    return _any_service(msg)


def _search(
    msg: _Message, pattern: re.Pattern[str], blockers: frozenset[str] = _NEGATIONS
) -> re.Match[str] | None:
    """The first match not preceded in its clause by a negation (or other blocker)."""
    for m in pattern.finditer(msg.line):
        if not blockers.intersection(msg.clause_before(msg.index(m))):
            return m
    return None


# --- actions --------------------------------------------------------------------------------

_REPLICAS = r"(?:replicas?|pods?|instances?|containers?|nodes?|copies|workers?)"
_ACTION_VERBS = (
    (ActionKind.RESTART, re.compile(r"\b(?:restart|reboot|bounce|recycle|kick(?! off\b))\b")),
    (
        ActionKind.ROLLBACK,
        re.compile(
            r"\b(?:rollback|revert|downgrade|undo(?= (?:the |that |this )?(?:last |latest "
            r"|recent |previous |bad )?(?:deploy|deployment|release|rollout|change)))\b"
        ),
    ),
    (
        ActionKind.SCALE_UP,
        re.compile(
            r"\bscale\b|\b(?:add|increase|bump|raise|set|more|extra|another)\b"
            rf"(?= (?:\S+ ){{0,3}}{_REPLICAS}\b)"
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class _Verb:
    kind: ActionKind
    index: int  # token index of the verb
    negated: bool


def _action_verbs(msg: _Message) -> list[_Verb]:
    """Action verbs used as commands, in order; reports ("the restart fixed it") are left out."""
    found = []
    for kind, pattern in _ACTION_VERBS:
        for m in pattern.finditer(msg.line):
            i = msg.index(m)
            before = msg.clause_before(i)
            after = msg.tokens[i + 1] if i + 1 < len(msg.tokens) else ""
            if (before and before[-1] in _DETERMINERS) or after in _REPORT_WORDS or "i" in before:
                continue
            found.append(_Verb(kind, i, bool(_NEGATIONS.intersection(before))))
    return sorted(found, key=lambda v: v.index)


def mentioned_actions(text: str, *, services: Iterable[str] = ()) -> frozenset[ActionKind]:
    """Every action the text names with a verb in any form, even negated or as a noun."""
    msg, _ = _prepare(text, services, (), ())
    return frozenset(kind for kind, pattern in _ACTION_VERBS if pattern.search(msg.line))


def affirms(text: str) -> bool:
    """The text says yes in some way ("yes", "lgtm", "go ahead", 👍 does not count)."""
    msg, _ = _prepare(text, (), (), ())
    return bool(_APPROVE_RE.search(msg.line) or re.search(r"\b(?:ok|okay|sure)\b", text.lower()))


def _scale(msg: _Message, verb: _Verb) -> Intent:
    clause = " ".join(msg.clause_from(verb.index))
    sign = -1 if re.search(r"\b(?:down|fewer|less)\b", clause) else 1
    replicas = delta = None
    if m := re.search(r"\bto (\d+)\b", clause):
        replicas = int(m.group(1))
    elif m := re.search(r"\bby (\d+)\b", clause):
        delta = sign * int(m.group(1))
    elif m := re.search(rf"\b(\d+) (?:more |extra |new |additional )?{_REPLICAS}\b", clause):
        if msg.tokens[verb.index] == "scale":
            replicas = int(m.group(1))
        else:
            delta = int(m.group(1))
    else:
        delta = sign
    after_noun = next(
        (
            verb.index + j + 1
            for j, t in enumerate(msg.clause_from(verb.index))
            if t in _REPLICA_NOUNS
        ),
        verb.index + 1,
    )
    return Intent(
        kind=IntentKind.ACTION,
        action=ActionKind.SCALE_UP,
        service=_service(msg, verb.index + 1, after_noun),
        replicas=replicas,
        delta=delta,
    )


def _action(msg: _Message) -> Intent | None:
    """An action verb used as a command: ACTION; used only under negation: DENY of it."""
    verbs = _action_verbs(msg)
    verb = next((v for v in verbs if not v.negated), None)
    if verb is None:
        if not verbs:
            return None
        return Intent(
            kind=IntentKind.DENY, action=verbs[0].kind, service=_service(msg, verbs[0].index + 1)
        )
    if verb.kind is ActionKind.SCALE_UP:
        return _scale(msg, verb)
    return Intent(kind=IntentKind.ACTION, action=verb.kind, service=_service(msg, verb.index + 1))


# --- everything else ----------------------------------------------------------------------


def _meta(pattern: str, kind: IntentKind) -> Callable[[_Message], Intent | None]:
    compiled = re.compile(pattern)

    def rule(msg: _Message) -> Intent | None:
        if not compiled.search(msg.line):
            return None
        return Intent(kind=kind, service=_any_service(msg))

    return rule


_help = _meta(
    r"^(?:help(?: me)?|commands|command list|list commands|usage|what can you do"
    r"|what do you do|how do i use (?:you|this|it)|what are (?:the|your) commands"
    r"|how does this work)$",
    IntentKind.HELP,
)
_oncall = _meta(
    r"^(?:(?:who is|who)(?: the| currently)? (?:oncall|on duty|paged)|(?:current )?oncall"
    r"|who (?:do|should) (?:i|we) (?:page|call|ping))\b",
    IntentKind.ONCALL,
)
_status = _meta(
    r"^(?:(?:what is|give me|show|show me|get|post)(?: the| a| an)? )?(?:current |latest "
    r"|quick )?(?:status|sitrep)\b|^(?:where are we|where do we stand|any (?:news|updates?"
    r"|progress)|updates?|how is it going|what is going on|what is happening|what is the latest)\b",
    IntentKind.STATUS,
)
_stats = _meta(
    r"^(?:(?:show|show me|give me|get|print|display)(?: the| me the)? )?(?:bot |opsbot )?"
    r"(?:stats|statistics)\b",
    IntentKind.STATS,
)
_list = _meta(
    r"^(?:(?:list|show|show me|get|give me|display)(?: all| the| me)* )?(?:open |active "
    r"|current |ongoing |all |recent |unresolved |triggered )?incidents\b|^list$"
    r"|^what is (?:open|active|ongoing)\b",
    IntentKind.LIST,
)


def _help_alone(msg: _Message) -> Intent | None:
    """A bare "?" asks what the bot can do."""
    return Intent(kind=IntentKind.HELP) if msg.asks and not msg.tokens else None


def _question(msg: _Message) -> Intent | None:
    if not msg.asks or msg.request:
        return None
    return Intent(kind=IntentKind.QUESTION, service=_any_service(msg))


_CHAOS_RE = re.compile(r"\bchaos\b")
_ON = frozenset({"on", "enable", "enabled", "start", "activate", "true", "yes"})
_OFF = frozenset({"off", "disable", "disabled", "stop", "end", "deactivate", "false", "no"})


def _chaos(msg: _Message) -> Intent | None:
    if not (m := _search(msg, _CHAOS_RE)):
        return None
    i = msg.index(m)
    switch = next((t for t in msg.clause_before(i) + msg.clause_from(i) if t in _ON | _OFF), None)
    return Intent(kind=IntentKind.CHAOS, enabled=None if switch is None else switch in _ON)


def _yes_no(msg: _Message) -> Intent | None:
    """A message that is only a yes ("lgtm go ahead") or only a no ("no, don't")."""
    words = set(msg.words())
    if words and words <= _APPROVE_WORDS and _APPROVE_RE.search(msg.line):
        return Intent(kind=IntentKind.APPROVE)
    if words and words <= _DENY_WORDS and _DENY_RE.search(msg.line):
        return Intent(kind=IntentKind.DENY)
    tokens = msg.words()
    if tokens and tokens[0] in _DENY_VERBS:
        named = [kind for kind, p in _ACTION_VERBS if p.search(" ".join(tokens[1:]))]
        return Intent(kind=IntentKind.DENY, action=named[0] if named else None)
    return None


_TICKET_FILLER = (
    r"(?:a|an|the|new|another|quick|jira|incident|follow-?up|ops|bug|fix|priority|p[0-5]"
    r"|sev[0-5]|" + "|".join(_PRIORITY_WORDS) + r")"
)
_TICKET_RE = re.compile(
    r"\b(?:file|create|open|raise|log|cut|submit|add|new|start|write|another)"
    rf"(?: {_TICKET_FILLER})* (?:jira|ticket|issue|bug|task|story)s?\b"
    r"|^(?:jira|ticket)\b|\b(?:jira|ticket) (?:it|this|that)\b"
)
_ASSIGN_RE = re.compile(
    r"\b(?:assign(?:ed)?(?: it| this| that)?(?: to)?|assignee|owner|for|give it to) (\S+)"
)
_PRIORITY_RE = re.compile(
    r"\b(?:p|sev)([0-5])\b|\bpriority (?:is |of |= )?([a-z]+|\d)\b|\b([a-z]+)[- ]priority\b"
)


def service_name(name: str | None) -> str | None:
    """A service as an Intent carries it: lower-case; "it"/"this service" None; "all" `*`."""
    words = (name or "").strip().lower().lstrip("#").split()
    if not words or set(words) <= _SELF | {"the", "service", "app", "incident", "current"}:
        return None
    if _ALL.intersection(words):
        return ALL_SERVICES
    return " ".join(words)


def priority_name(value: str) -> str | None:
    """Jira's priority name for "P1", "sev2", "high", "urgent", "3": Highest..Lowest."""
    v = value.strip().lower()
    if m := re.fullmatch(r"(?:p|sev|priority ?)?([0-5])", v):
        return _PRIORITY_NAMES[max(int(m.group(1)) - 1, 0)]
    return _PRIORITY_WORDS.get(v)


def _person(msg: _Message, start: int) -> str | None:
    """Who the words from token `start` name: a mention, someone in `people`, or one name."""
    words = msg.clause_from(start)
    if not words:
        return None
    if words[0] in msg.mentions:
        return msg.mentions[words[0]]
    by_fold = {p.casefold(): p for p in msg.people}
    for n in (3, 2, 1):
        if len(words) >= n and (hit := by_fold.get(" ".join(words[:n]))):
            return hit
    first_names = {p.split()[0].casefold(): p for p in msg.people}
    close = difflib.get_close_matches(words[0], list(first_names), n=1, cutoff=0.85)
    if close:
        return first_names[close[0]]
    if _is_name(words[0]) and not _known_service(msg, words[0]) and "." not in words[0]:
        return words[0]
    return None


def _ticket(msg: _Message) -> Intent | None:
    if not _search(msg, _TICKET_RE):
        return None
    assignee = next(
        (
            p
            for m in _ASSIGN_RE.finditer(msg.line)
            if (p := _person(msg, msg.index(m) + len(m.group(0).split()) - 1))
        ),
        None,
    )
    if assignee is None and msg.mentions:
        assignee = next(iter(msg.mentions.values()))
    priority = next(
        (
            p
            for m in _PRIORITY_RE.finditer(msg.line)
            if (p := priority_name(m.group(m.lastindex or 0)))
        ),
        None,
    )
    return Intent(
        kind=IntentKind.TICKET, service=_any_service(msg), assignee=assignee, priority=priority
    )


_SNOOZE_RE = re.compile(r"\b(?:snooze|mute|silence|quiet|shush)\b")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(
    r"(?:(?<![\d.])(\d+(?:\.\d+)?) ?|\ban? )"
    r"(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?)(?![a-z])"
)


def duration_seconds(text: str) -> int | None:
    """Seconds in "30m", "2 hours", "1h30m", "an hour", "90" (minutes); None if none."""
    matches = list(_DURATION_RE.finditer(text))
    if matches:
        return int(sum(float(m.group(1) or 1) * _UNITS[m.group(2)[0]] for m in matches))
    if m := re.search(r"(?<![\w.])(\d+)(?![\w.])", text):
        return int(m.group(1)) * 60
    return None


def _snooze(msg: _Message) -> Intent | None:
    if not (m := _search(msg, _SNOOZE_RE)):
        return None
    return Intent(
        kind=IntentKind.SNOOZE,
        service=_any_service(msg),
        duration_s=duration_seconds(" ".join(msg.clause_from(msg.index(m)))),
    )


def _keyword(
    pattern: str, kind: IntentKind, blockers: frozenset[str] = _NEGATIONS
) -> Callable[[_Message], Intent | None]:
    compiled = re.compile(pattern)

    def rule(msg: _Message) -> Intent | None:
        if not _search(msg, compiled, blockers):
            return None
        return Intent(kind=kind, service=_any_service(msg))

    return rule


_diagnose = _keyword(
    r"\b(?:re)?diagnos(?:e|is)\b|\b(?:re)?investigate\b|\b(?:re)?analy[sz]e\b|\banalysis\b"
    r"|\btake another look\b|\b(?:look|check) again\b|\bdig (?:deeper|in)\b",
    IntentKind.DIAGNOSE,
)
_resolve_words = _keyword(
    r"\b(?:fixed|resolved?|recovered|mitigated)\b|\ball good\b|\bback to normal\b"
    r"|\bmark (?:it |this |as )*(?:resolved|fixed|closed|done)\b"
    r"|\bclose (?:it|this|that|out|the incident|this incident)\b|^(?:close|closed|closing)$",
    IntentKind.RESOLVE,
    _NEGATIONS | _HEDGES | {"sure", "if", "once", "until", "whether", "unless"},
)


def _resolve(msg: _Message) -> Intent | None:
    # "fixed the config but still failing" is not a resolution.
    return None if "still" in msg.tokens else _resolve_words(msg)


_acknowledge = _keyword(
    r"\back(?:ed|d|ing|nowledged?|nowledging)?\b|\bon it\b|\blooking (?:in)?to (?:it|this)\b"
    r"|\blooking (?:into|at) (?:it|this|that)\b|^(?:i am |we are |am )?(?:looking|investigating"
    r"|checking)(?! good| fine| better| ok)\b|^mine\b|\btaking (?:this|it|point|the lead)\b"
    r"|\bi (?:will|can) (?:take|handle|grab) (?:it|this)\b|\bi (?:have|got|have got) (?:it|this)"
    r"\b|\bclaim(?:ed|ing)?\b|\bhandling (?:it|this)\b",
    IntentKind.ACKNOWLEDGE,
)

_RULES: tuple[Callable[[_Message], Intent | None], ...] = (
    _help_alone,
    _help,
    _oncall,
    _status,
    _stats,
    _list,
    _question,
    _chaos,
    _yes_no,
    _ticket,
    _action,
    _snooze,
    _diagnose,
    _resolve,
    _acknowledge,
)


def parse(
    text: str,
    *,
    services: Iterable[str],
    people: Iterable[str] = (),
    bot_names: Iterable[str] = ("opsbot",),
) -> Intent:
    """The operator's message as one Intent (source "grammar"); UNKNOWN rather than a guess.

    Decisions the router relies on:
    - `service` None means "this incident" ("it", "the service", or no target). A name is
      returned lower-case as written, known or not, so the router can refuse an unknown one;
      "all", "everything", "*" give `ALL_SERVICES` ("*"), which the router must refuse.
    - A question (ends in "?", or opens with what/why/how/is/should/...) is QUESTION even if
      it names an action ("should we roll back?", "restart it?"); "can you restart it?" and
      "please restart it?" are requests.
    - A negated action ("don't restart it", "no need to roll back") is DENY with `action` set;
      "no", "no, don't", "cancel", "stop" are DENY with no action. Other negated words give
      nothing ("not fixed yet" is UNKNOWN).
    - Reports are not commands: "the restart fixed it", "restart did not help", "I'll restart".
    - 👀 and 👍 acknowledge, ✅ resolves, 👎 and ❌ deny, when the message is only emoji;
      approving takes words ("approve", "yes", "lgtm", "go ahead", "do it").
    - Mentions of `bot_names` (names or chat user ids) are dropped, and so is a mention that
      opens the message (it addresses someone). Any other mention (`<@U123>`, `@ravi`) can be
      a ticket's assignee, returned as the user id or name mentioned. Priorities come back as Jira names
      (P1 = Highest ... P5 = Lowest). "#42" anywhere sets `incident_ref` "42".
    - Only the first MAX_CHARS characters are read.
    - Scaling is always ActionKind.SCALE_UP: "to N" sets `replicas`, "by N" / "add N pods"
      sets `delta` (negative for "scale down by N"), plain "scale up" is `delta` 1.
    """
    msg, ref = _prepare(text, services, people, bot_names)
    intent = next((hit for rule in _RULES if (hit := rule(msg))), None)
    if intent is None:
        asked = msg.asks or (bool(msg.tokens) and msg.tokens[0] in _ASK_VERBS)
        kind = IntentKind.QUESTION if asked else IntentKind.UNKNOWN
        intent = Intent(kind=kind, service=_any_service(msg) if asked else None)
    return intent.model_copy(update={"text": text, "source": "grammar", "incident_ref": ref})
