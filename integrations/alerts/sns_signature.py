"""Verify that an SNS delivery was signed by AWS: SignatureVersion 1 is SHA1withRSA, 2 is
SHA256withRSA, over the string AWS builds from the envelope's fields."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from integrations.alerts.sns import NOTIFICATION, SnsEnvelope
from integrations.errors import SignatureError, TransientError

CERT_FETCH_TIMEOUT_S = 5.0
DEFAULT_MAX_AGE_S = 3600

_CERT_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(:443)?")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)

Fetch = Callable[[str], Awaitable[bytes]]


def string_to_sign(env: SnsEnvelope) -> bytes:
    """`Key\\nValue\\n` for each signed key in AWS's order; absent keys (Subject) are skipped."""
    keys = _NOTIFICATION_KEYS if env.Type == NOTIFICATION else _CONFIRMATION_KEYS
    pairs = ((key, getattr(env, key)) for key in keys)
    return "".join(f"{key}\n{value}\n" for key, value in pairs if value is not None).encode()


async def fetch_certificate(url: str) -> bytes:
    """GET the signing certificate; a network failure or 5xx is transient (SNS will retry)."""
    try:
        async with httpx.AsyncClient(timeout=CERT_FETCH_TIMEOUT_S) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise TransientError(f"could not fetch SNS signing certificate {url}: {exc!r}") from exc
    if response.status_code >= 500:
        raise TransientError(f"SNS signing certificate {url} answered {response.status_code}")
    if response.status_code != 200:
        raise SignatureError(f"SNS signing certificate {url} answered {response.status_code}")
    return response.content


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SnsVerifier:
    """Checks an envelope's age, certificate origin and signature.

    With `trusted_cert_pem` (one or more PEM certificates, the test setting) those are used
    and `SigningCertURL` is ignored; otherwise the URL must be an https `sns.<region>` AWS
    host and the certificate is fetched once per URL and kept in memory.
    """

    def __init__(
        self,
        trusted_cert_pem: bytes | None = None,
        fetch: Fetch | None = None,
        *,
        max_age_s: int | None = DEFAULT_MAX_AGE_S,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._trusted = (
            _load_certificates(trusted_cert_pem, "trusted_cert_pem") if trusted_cert_pem else None
        )
        self._fetch = fetch or fetch_certificate
        self._max_age = None if max_age_s is None else timedelta(seconds=max_age_s)
        self._now = now
        self._cache: dict[str, list[x509.Certificate]] = {}

    async def verify(self, env: SnsEnvelope) -> None:
        """Return if AWS signed `env`; raise SignatureError saying why not."""
        algorithm = _HASHES.get(env.SignatureVersion)
        if algorithm is None:
            raise SignatureError(
                f"unsupported SignatureVersion {env.SignatureVersion!r}; expected '1' or '2'"
            )
        now = self._now()
        if self._max_age is not None and now - env.sent_at > self._max_age:
            raise SignatureError(
                f"message Timestamp {env.Timestamp} is older than "
                f"{int(self._max_age.total_seconds())} s: a replay or a long-delayed delivery"
            )
        try:
            signature = base64.b64decode(env.Signature, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("Signature is not valid base64") from None
        certificates = self._trusted or await self._certificates(env.SigningCertURL)
        keys = [
            cert.public_key()
            for cert in certificates
            if cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
        ]
        if not keys:
            raise SignatureError(f"the signing certificate is not valid at {now.isoformat()}")
        data = string_to_sign(env)
        for key in keys:
            if not isinstance(key, rsa.RSAPublicKey):
                continue
            try:
                key.verify(signature, data, padding.PKCS1v15(), algorithm())
            except InvalidSignature:
                continue
            return
        raise SignatureError(
            "signature does not match the message: altered in transit or not signed by SNS"
        )

    async def _certificates(self, url: str) -> list[x509.Certificate]:
        if url not in self._cache:
            _check_cert_url(url)
            self._cache[url] = _load_certificates(await self._fetch(url), url)
        return self._cache[url]


def _check_cert_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise SignatureError(f"SigningCertURL must use https: {url}")
    # The whole netloc is matched so that user info or another port cannot slip through.
    if not _CERT_HOST.fullmatch(parts.netloc.lower()):
        raise SignatureError(
            f"SigningCertURL host {parts.netloc!r} is not sns.<region>.amazonaws.com[.cn]"
        )
    if not parts.path.endswith(".pem"):
        raise SignatureError(f"SigningCertURL must point to a .pem file: {url}")


def _load_certificates(pem: bytes, origin: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise SignatureError(f"{origin} is not a PEM certificate: {exc}") from exc
