"""Errors raised by integrations; one root so callers can catch the family.

IntegrationError
 ├── PayloadError            the input can never be parsed (the sender should not retry)
 ├── SignatureError          the caller could not be authenticated
 ├── RateLimited             the remote asked us to slow down (retry_after seconds)
 ├── TransientError          the remote is down or answered 5xx: retry later
 └── PermanentError          the remote refused for good (4xx that retrying cannot fix)
"""

from __future__ import annotations

import time


class IntegrationError(Exception):
    """Root of every error an integration raises."""


class PayloadError(IntegrationError):
    """An inbound payload is malformed; `field` names the offending key when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SignatureError(IntegrationError):
    """An inbound request's signature or token did not verify."""


class TransientError(IntegrationError):
    """A remote failure that may succeed when retried."""


class RateLimited(TransientError):
    """The remote answered 429; retry after `retry_after` seconds (from its answer)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.answered_at = time.monotonic()

    def remaining(self) -> float:
        """What is left of the wait now (time spent since the answer counts)."""
        return max(0.0, self.retry_after - (time.monotonic() - self.answered_at))


class PermanentError(IntegrationError):
    """A remote refusal that retrying cannot fix (bad channel, missing field, bad auth)."""
