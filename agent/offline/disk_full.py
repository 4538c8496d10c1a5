"""Disk full: a volume ran out of space or inodes (ENOSPC in any runtime, PostgreSQL/MySQL
write failures, Kubernetes DiskPressure, cloud storage alarms)."""

from __future__ import annotations

import re

from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, IncidentContext, Observations

NO_SPACE = (
    s.pattern("enospc", r"No space left on device|ENOSPC", 0.5, ignore_case=True),
    s.pattern("pg_extend", r"could not extend file|could not write to file", 0.2),
    s.pattern("quota", r"Disk quota exceeded|EDQUOT", 0.4),
    s.pattern(
        "storage_exhausted",
        r"storage (has been )?exhausted|disk (is )?full|filesystem (is )?full|out of disk space|"
        r"The table '[^']+' is full|flood[- ]stage disk watermark",
        0.35,
        ignore_case=True,
    ),
    s.pattern(
        "disk_pressure",
        r"DiskPressure|low on resource: ephemeral-storage|evicted.*ephemeral-storage",
        0.35,
    ),
    s.pattern("inodes", r"\binodes?\b[^\n]{0,40}(exhausted|full|100%)", 0.3, ignore_case=True),
)
_USED = re.compile(
    r"(disk|filesystem|fs|volume|storage|inode)s?_\w*(used|usage|util)", re.IGNORECASE
)
_FREE = re.compile(
    r"(free|avail)\w*_(storage|space|bytes|disk)|(disk|storage)_\w*(free|avail)", re.IGNORECASE
)
_ALERT = re.compile(
    r"FreeStorageSpace|DiskSpace|disk|Filesystem\w*Space|OutOfSpace|VolumeFillingUp|VolumeFull|"
    r"storage|inode",
    re.IGNORECASE,
)


class DiskFull:
    name = "disk_full"
    category = Category.DISK_FULL
    action = ActionKind.NONE

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        hits = s.observed(obs, NO_SPACE)
        used = max(s.metrics_named(obs, _USED), key=lambda m: m.current, default=None)
        free = next((m for m in s.metrics_named(obs, _FREE) if m.baseline > 0), None)
        full = used is not None and used.current >= 95
        empty = free is not None and free.current <= 0.02 * free.baseline
        if not (hits or full or empty):
            return None
        case = Case()
        case.add(s.weight(hits, 0.55), *s.quotes(hits, 3))
        if used is not None and (full or used.current >= 90):
            case.add(0.3 if full else 0.15, used.evidence)
        if free is not None and empty:
            case.add(0.15, free.evidence)
        alert = s.alert_hit(ctx, _ALERT)
        case.add(0.1 if alert else 0.0, alert)

        level = f" ({used.describe()})" if used is not None else ""
        what = hits[0].text if hits else "the volume is full"
        growth = (
            f"; usage climbed from {s.fmt(used.values[0])}% to {s.fmt(used.peak)}%"
            if used is not None and used.grows
            else ""
        )
        return case.finding(
            self,
            headline=f"volume out of space ({what})",
            root_cause=(
                f"A volume ran out of space{level}{growth}, so writes fail with '{what}'; "
                "anything that needs to write (inserts, temp files, WAL, logs) breaks."
            ),
            checks=(
                "Find what filled it: du -xh --max-depth=2 on the mount (or the database's "
                "largest tables, temp files and WAL/binlog size)",
                "Check inode usage too: df -i",
                "Look for a job that started writing heavily just before (ETL, backups, logs)",
            ),
            mitigation=(
                "A human should free or add space: grow the volume/allocated storage, delete or "
                "archive what is safe to remove, and stop the job that filled it; a restart does "
                "not help and can stop a database from recovering"
            ),
        )


RULE = DiskFull()
