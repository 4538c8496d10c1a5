"""The web console: static files at /, and who the console user is.

Bound to loopback and reached by a loopback name, the local user is an admin and needs no
login. Otherwise every /api and /admin request needs a session (POST /api/login with
`console.token`) or, for /admin, the admin token; state-changing requests must echo the
`opsbot_csrf` cookie in `X-CSRF-Token`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from importlib.resources import files

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

router = APIRouter()
STATIC = files("bot") / "static"
SESSION_COOKIE, CSRF_COOKIE = "opsbot_session", "opsbot_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROTECTED = ("/api/", "/admin/")


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _session_value(token: str) -> str:
    return hmac.new(token.encode(), b"opsbot-console-session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    """Constant-time equality that also takes non-ASCII input (a 401, not a 500)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _admin_bearer(request: Request) -> bool:
    token: str = request.app.state.runtime.cfg.admin.token
    return bool(token) and _same(request.headers.get("authorization", ""), f"Bearer {token}")


class ConsoleGuard:
    """Login and CSRF checks for console requests (none for the local user on loopback)."""

    def __init__(self, host: str, token: str) -> None:
        self.required = not is_loopback(host)
        self.token = token

    def check(self, request: Request) -> None:
        path = request.url.path
        if not path.startswith(PROTECTED) or path == "/api/login":
            return
        # Another host name on a loopback bind is a page that rebound its DNS to 127.0.0.1, or a
        # proxy keeping Host: not the local user.
        if not self.required and is_loopback(request.url.hostname or ""):
            return
        if path.startswith("/admin/") and request.headers.get("authorization"):
            if _admin_bearer(request):
                return  # scripts holding the admin token
            raise HTTPException(401, "admin token required", {"WWW-Authenticate": "Bearer"})
        session = request.cookies.get(SESSION_COOKIE, "")
        if not self.token:
            raise HTTPException(401, "console login required; set console.token to allow it")
        if not _same(session, _session_value(self.token)):
            raise HTTPException(401, "console login required")
        if request.method not in SAFE_METHODS:
            cookie = request.cookies.get(CSRF_COOKIE, "")
            header = request.headers.get("x-csrf-token", "")
            if not cookie or not _same(cookie, header):
                raise HTTPException(403, "missing or wrong X-CSRF-Token")


class Login(BaseModel):
    token: str


@router.post("/api/login")
async def login(request: Request, body: Login, response: Response) -> dict[str, bool]:
    guard: ConsoleGuard = request.app.state.guard
    if not guard.token or not _same(body.token, guard.token):
        raise HTTPException(401, "wrong console token")
    secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE, _session_value(guard.token), httponly=True, samesite="strict", secure=secure
    )
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(24), samesite="strict", secure=secure)
    return {"ok": True}


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
