"""Payload builders shared by tests: an Alertmanager v4 notification of one firing alert."""

from __future__ import annotations

from typing import Any


def alertmanager_notification(
    labels: dict[str, str],
    annotations: dict[str, str],
    *,
    group: str,
    fingerprint: str,
    generator_url: str = "http://prometheus:9090/graph",
    starts_at: str = "2026-11-25T10:00:00Z",
) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": group,
        "status": "firing",
        "receiver": "opsbot",
        "groupLabels": {},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": generator_url,
                "fingerprint": fingerprint,
            }
        ],
    }
