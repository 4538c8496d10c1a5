"""Console logins: who a token, a name and password, or a session cookie belongs to.

People sign in with `people[].console` (a password hash from `opsbot hash-password`, or a
token); `console.token` is a shared login with no name attached; `admin.token` is for scripts.
A session cookie is signed and expires (itsdangerous), and names the credential it came from:
changing that credential in the config ends the session.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from bot.app.config import Config, PersonConfig
from bot.app.passwords import hash_password, verify_password

LOCAL_USER = "console"  # the person at the bot's own machine (loopback bind, direct connection)
SHARED_USER = "console-token"  # whoever holds the shared console.token
ADMIN_USER = "admin-token"  # a script holding admin.token
_DUMMY_HASH = hash_password(secrets.token_hex(8))  # unknown names cost as much as known ones


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """`id` is what messages and the audit log carry: a person's name for people."""

    id: str
    via: str  # local | password | token | proxy | admin-token


def same(given: str, expected: str) -> bool:
    """Constant-time equality that also takes non-ASCII input (a 401, not a 500)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _fingerprint(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()[:24]


class Logins:
    """Checks credentials against the config and issues/verifies session cookies."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        secret = cfg.console.session_secret or secrets.token_hex(32)
        self._signer = URLSafeTimedSerializer(secret, salt="opsbot-console-session")

    @property
    def configured(self) -> bool:
        return bool(self.cfg.console.token) or any(
            p.console and (p.console.token or p.console.password_hash) for p in self.cfg.people
        )

    def _credentials(self, user_id: str) -> list[str]:
        """The credentials that currently sign `user_id` in."""
        if user_id == SHARED_USER:
            return [self.cfg.console.token] if self.cfg.console.token else []
        person = self.person(user_id)
        if person is None or person.console is None or person.name != user_id:
            return []
        return [c for c in (person.console.password_hash, person.console.token) if c]

    def person(self, key: str) -> PersonConfig | None:
        return self.cfg.person(key)

    def by_token(self, token: str) -> tuple[ConsoleUser, str] | None:
        """A person's console token, the shared console token, or the admin token."""
        if not token:
            return None
        found: tuple[ConsoleUser, str] | None = None
        for p in self.cfg.people:  # compare with every one: no early exit to time
            if p.console and p.console.token and same(token, p.console.token):
                found = ConsoleUser(p.name, "token"), p.console.token
        if self.cfg.console.token and same(token, self.cfg.console.token):
            found = found or (ConsoleUser(SHARED_USER, "token"), self.cfg.console.token)
        if self.cfg.admin.token and same(token, self.cfg.admin.token):
            found = found or (ConsoleUser(ADMIN_USER, "admin-token"), self.cfg.admin.token)
        return found

    async def by_password(self, name: str, password: str) -> tuple[ConsoleUser, str] | None:
        person = self.person(name) if name else None
        stored = person.console.password_hash if person and person.console else ""
        ok = await asyncio.to_thread(verify_password, password, stored or _DUMMY_HASH)
        if person is None or not stored or not ok:
            return None
        return ConsoleUser(person.name, "password"), stored

    def issue(self, user: ConsoleUser, credential: str) -> str:
        return self._signer.dumps({"u": user.id, "k": _fingerprint(credential), "v": user.via})

    def session(self, cookie: str) -> ConsoleUser | None:
        """The user a session cookie names, if it is genuine, fresh and its credential stands."""
        if not cookie:
            return None
        try:
            data: Any = self._signer.loads(cookie, max_age=self.cfg.console.session_ttl_s)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) for k in ("u", "k", "v")
        ):
            return None
        if data["k"] not in {_fingerprint(c) for c in self._credentials(data["u"])}:
            return None
        return ConsoleUser(data["u"], data["v"])
