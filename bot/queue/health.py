"""How the outbox worker is doing: when it last moved the queue and last delivered, how often
it was restarted; what /readyz, /metrics and /stats report of it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.app import metrics
from bot.incidents.models import iso, utcnow


@dataclass(slots=True)
class WorkerHealth:
    clock: Callable[[], float] = time.monotonic
    last_progress: float = field(init=False)  # an item finished, or nothing was due
    last_success_at: datetime | None = None  # an item delivered
    restarts: int = 0
    down_since: float | None = None  # crashed, waiting to be restarted

    def __post_init__(self) -> None:
        self.last_progress = self.clock()

    def progressed(self) -> None:
        self.last_progress = self.clock()

    def delivered(self) -> None:
        self.progressed()
        self.last_success_at = utcnow()
        metrics.OUTBOX_LAST_SUCCESS.set(self.last_success_at.timestamp())

    def crashed(self) -> None:
        self.restarts += 1
        self.down_since = self.clock()
        metrics.OUTBOX_RESTARTS.inc()

    def restarted(self) -> None:
        self.down_since = None
        self.progressed()

    def problem(self, stall_s: float, due: int) -> str | None:
        """Why the worker is not doing its job, if it is not: crashed (being restarted), or
        no progress for `stall_s` while `due` items wait."""
        if self.down_since is not None:
            return f"outbox worker crashed {self.clock() - self.down_since:.0f} s ago, restarting"
        idle = self.clock() - self.last_progress
        if due and idle > stall_s:
            return f"outbox worker made no progress for {idle:.0f} s with {due} item(s) due"
        return None

    def report(self) -> dict[str, Any]:
        return {
            "last_success_at": iso(self.last_success_at),
            "worker_restarts": self.restarts,
            "worker_running": self.down_since is None,
        }
