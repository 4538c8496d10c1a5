"""The web console: static files at /, and who is asking on /api and /admin.

The person at the bot's own machine (loopback bind, a direct loopback connection with no
forwarding headers, a loopback host name) needs no login. Everyone else signs in (POST
/api/login: a person's name and password or token, or the shared `console.token`), sends a
bearer token (a person's, or `admin.token`), or is named by `console.identity_header` from a
trusted proxy. Cookie-borne identities must echo the `opsbot_csrf` cookie in `X-CSRF-Token` on
state changes. With `admin.token` set, changing /admin state needs it, or an admin's login.
"""

from __future__ import annotations

import secrets
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from bot.app.config import Config
from bot.app.server.logins import LOCAL_USER, ConsoleUser, Logins, same
from bot.app.server.peers import TrustedProxies, forwarded, is_loopback
from bot.incidents.policy import actor_of

router = APIRouter()
STATIC = files("bot") / "static"
SESSION_COOKIE, CSRF_COOKIE = "opsbot_session", "opsbot_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROTECTED = ("/api/", "/admin/")
LOGIN_PATH = "/api/login"
_BEARER = {"WWW-Authenticate": "Bearer"}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, _BEARER)


class ConsoleGuard:
    """Names the user of every /api and /admin request, or refuses it."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.proxies = TrustedProxies(cfg.http.trusted_proxies)
        self.logins = Logins(cfg)
        self._local_bind = is_loopback(cfg.http.host)

    @staticmethod
    def guards(path: str) -> bool:
        """Whether a request to `path` must name its user."""
        return path.startswith(PROTECTED) and path != LOGIN_PATH

    def check(self, request: Request) -> None:
        path = request.url.path
        if not self.guards(path):
            return
        user = self._identify(request)
        request.state.user, request.state.via = user.id, user.via
        request.state.client = self.proxies.client(request)
        if path.startswith("/admin/") and request.method not in SAFE_METHODS:
            self._administer(user)

    def is_local(self, request: Request) -> bool:
        """A direct connection from this machine to a loopback-bound bot. A proxy (even one on
        this machine) says so with forwarding headers or by being a trusted proxy; a host name
        other than a loopback one is a page that rebound its DNS to 127.0.0.1."""
        peer = self.proxies.peer(request)
        return (
            self._local_bind
            and is_loopback(peer)
            and peer not in self.proxies
            and not forwarded(request)
            and is_loopback(request.url.hostname or "")
        )

    def _identify(self, request: Request) -> ConsoleUser:
        # Other schemes (a proxy's own Basic auth, passed on) are not ours to judge.
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            found = self.logins.by_token(token.strip())
            if found is None:
                raise _unauthorized("wrong bearer token")
            return found[0]
        user = self._from_proxy(request) or self.logins.session(
            request.cookies.get(SESSION_COOKIE, "")
        )
        if user is None and self.is_local(request):
            return ConsoleUser(LOCAL_USER, "local")
        if user is None:
            hint = "" if self.logins.configured else "; set people[].console or console.token"
            raise _unauthorized(f"console login required{hint}")
        if request.method not in SAFE_METHODS:
            cookie = request.cookies.get(CSRF_COOKIE, "")
            if not cookie or not same(cookie, request.headers.get("x-csrf-token", "")):
                raise HTTPException(403, "missing or wrong X-CSRF-Token")
        return user

    def _from_proxy(self, request: Request) -> ConsoleUser | None:
        name_header = self.cfg.console.identity_header
        if not name_header or not self.proxies.via_trusted(request):
            return None
        name = request.headers.get(name_header, "").strip()
        if not name:
            return None
        if name.lower() == LOCAL_USER:
            raise _unauthorized(f"{name_header}: {name!r} is reserved for the local user")
        person = self.cfg.person(name)
        return ConsoleUser(person.name if person else name, "proxy")

    def _administer(self, user: ConsoleUser) -> None:
        if not self.cfg.admin.token or user.via == "admin-token":
            return
        person = self.cfg.person(user.id) if user.id != LOCAL_USER else None
        if person is not None and person.name == user.id and "admin" in person.roles:
            return
        if user.via == "local":
            raise _unauthorized("admin token required")
        raise HTTPException(403, f"{user.id} may not change admin settings (admin role needed)")


class Login(BaseModel):
    """A person's name and password, or a token (a person's or the shared console token)."""

    user: str = Field(default="", max_length=200)
    password: str = Field(default="", max_length=1024)
    token: str = Field(default="", max_length=1024)


@router.post(LOGIN_PATH)
async def login(request: Request, body: Login, response: Response) -> dict[str, str]:
    guard: ConsoleGuard = request.app.state.guard
    if body.user:
        found = await guard.logins.by_password(body.user, body.password)
        if found is None:
            raise _unauthorized("wrong name or password")
    else:
        found = guard.logins.by_token(body.token)
        if found is None or found[0].via == "admin-token":
            raise _unauthorized("wrong console token")
    user, credential = found
    secure = guard.proxies.scheme(request) == "https"
    response.set_cookie(
        SESSION_COOKIE,
        guard.logins.issue(user, credential),
        max_age=guard.cfg.console.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(24), samesite="strict", secure=secure)
    return {"user": user.id}


@router.get("/api/me")
async def me(request: Request) -> dict[str, Any]:
    """Who the console takes this request's sender for, and from which address."""
    actor = actor_of(request.app.state.runtime.cfg, "console", request.state.user)
    return {
        "user": request.state.user,
        "name": actor.person.name if actor.person else actor.name,
        "roles": sorted(actor.roles),
        "via": request.state.via,
        "client": request.state.client,
    }


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    resp = FileResponse(str(STATIC / "index.html"))
    if CSRF_COOKIE not in request.cookies:
        resp.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(24), samesite="strict")
    return resp


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(str(path))
