"""Console passwords: scrypt hashes (`scrypt$n$r$p$salt$hash`, base64) made and checked here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
_MAX_N = 2**18  # with r <= 16, a configured hash costs at most ~512 MiB a login


class HashFormatError(ValueError):
    """A stored password hash is not one `hash_password` makes."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise HashFormatError("expected scrypt$N$r$p$salt$hash, as `opsbot hash-password` prints")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise HashFormatError(f"unreadable scrypt parameters: {exc}") from exc
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 16 and key):
        raise HashFormatError("scrypt parameters out of range")
    return n, r, p, salt, key


def check_hash_format(encoded: str) -> None:
    _parse(encoded)


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches; slow on purpose (run it off the event loop)."""
    n, r, p, salt, key = _parse(encoded)
    given = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=len(key),
        maxmem=132 * n * r + 128 * r * p + 2**20,
    )
    return hmac.compare_digest(given, key)
