"""The config's own secrets are found wherever they sit, and logs never carry them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from agent.redact import Redactor
from bot.app import logs
from bot.app.config import Config
from bot.app.secrets import configured_secrets, redact_patterns

CONFIG = {
    "storage": {"url": "postgresql://opsbot:pg-pass-123456@db:5432/opsbot"},
    "webhooks": {"token": "webhook-token-0001"},
    "admin": {"token": "admin-token-0001"},
    "llm": {"providers": [{"name": "p", "api_key": "sk-live-abcdef123456"}]},
    "slack": {"bot_token": "xoxb-slack-0001", "signing_secret": "slack-signing-0001"},
    "discord": {
        "public_key": "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
        "application_id": "123456789012",
    },
    "jira": {"url": "https://jira.example.com", "api_token": "jira-token-0001"},
    "console": {"session_secret": "session-secret-0001"},
    "services": {
        "checkout": {
            "repo": {"github": "org/checkout", "token": "ghp-token-0001"},
            "actions": {
                "restart": {
                    "shell": ["true"],
                    "env": {"DEPLOY_TOKEN": "deploy-0001", "HOME": "/h"},
                },
                "rollback": {
                    "http": {
                        "url": "https://d.example.com",
                        "headers": {"Authorization": "Bearer dpl-0002"},
                    }
                },
            },
        }
    },
    "people": [{"name": "Ravi", "console": {"token": "ravi-console-0001"}}],
}
SECRET_VALUES = {
    "pg-pass-123456",
    "webhook-token-0001",
    "admin-token-0001",
    "sk-live-abcdef123456",
    "xoxb-slack-0001",
    "slack-signing-0001",
    "jira-token-0001",
    "session-secret-0001",
    "ghp-token-0001",
    "deploy-0001",
    "Bearer dpl-0002",
    "dpl-0002",
    "ravi-console-0001",
}


def test_every_configured_secret_is_found_and_nothing_public() -> None:
    found = set(configured_secrets(Config.model_validate(CONFIG)))
    assert found == SECRET_VALUES
    assert (
        "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789" not in found
    )  # Discord's public key is public


def test_configured_secrets_are_masked_like_known_shapes() -> None:
    redactor = Redactor(redact_patterns(Config.model_validate(CONFIG)))
    masked = redactor.redact("jira said 401 for jira-token-0001; then DEPLOY_TOKEN=deploy-0001")
    assert "jira-token-0001" not in masked and "deploy-0001" not in masked


@pytest.fixture
def masked_logs() -> Iterator[io.StringIO]:
    """JSON logs into a buffer, masked with the config's secrets; defaults restored after."""
    out = io.StringIO()
    logs.setup("INFO", json=True, stream=out)
    logs.mask_with(Redactor(redact_patterns(Config.model_validate(CONFIG))))
    yield out
    structlog.reset_defaults()
    logs.mask_with(Redactor())


def test_logs_mask_secret_values_and_token_shapes_not_only_keys(
    masked_logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    for handler in logging.getLogger().handlers:  # as `setup` does for the handlers it finds
        handler.addFilter(logs.MaskRecords())
    structlog.get_logger("test").warning(
        "jira.failed jira-token-0001",
        error="401 with Authorization: Bearer abcdefgh12345678",
        detail={"raw": ["xoxb-123456789012-abcdefghij", "ok"]},
        url="postgresql://opsbot:pg-pass-123456@db:5432/opsbot",
        count=3,
    )
    text = masked_logs.getvalue()
    for secret in ("jira-token-0001", "abcdefgh12345678", "xoxb-123456789012", "pg-pass-123456"):
        assert secret not in text
    (event,) = [json.loads(line) for line in text.splitlines()]
    assert event["count"] == 3 and event["detail"]["raw"][1] == "ok"
    assert event["event"].startswith("jira.failed [REDACTED:")

    logging.getLogger("opsbot.test.stdlib").warning("proxy saw admin-token-0001")
    (record,) = [r for r in caplog.records if r.name == "opsbot.test.stdlib"]
    assert record.getMessage().startswith("proxy saw [REDACTED:")
