"""Shared test set-up: every module in tests/fakes/ is a fixture plugin (local fake servers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = sorted(
    f"tests.fakes.{p.stem}"
    for p in (Path(__file__).parent / "fakes").glob("*.py")
    if not p.stem.startswith("_")
)

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk and others read proxy variables and ignore NO_PROXY: tests talk to 127.0.0.1."""
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    for var in ("OPSBOT_CONFIG", "OPENAI_API_KEY", "SLACK_BOT_TOKEN", "JIRA_URL"):
        monkeypatch.delenv(var, raising=False)
    os.environ.setdefault("OPSBOT_LOG_LEVEL", "WARNING")


@pytest.fixture
def sample_am() -> dict:
    """A minimal Alertmanager v4 notification (one firing alert)."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "status": "firing",
        "receiver": "opsbot",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "HighErrorRate",
                    "service": "checkout",
                    "severity": "critical",
                },
                "annotations": {"summary": "checkout 5xx above 5%"},
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "aaaabbbbccccdddd",
            }
        ],
    }
