"""Errors of the bot process.

BotError
 ├── StoreUnavailable     the database is busy or unreachable: transient, answer 503
 └── NotFound             an id or short id that does not exist
"""

from __future__ import annotations


class BotError(Exception):
    """Root of the bot's own errors."""


class StoreUnavailable(BotError):
    """The store could not be reached or stayed locked; the caller should retry later."""


class NotFound(BotError):
    """The requested record does not exist."""
