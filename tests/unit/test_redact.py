"""Every secret kind is masked with a stable placeholder, and restored from the model's echo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.redact import Redactor

SECRETS = {
    "aws_key": ("key id AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE"),
    "aws_key_session": ("ASIAXYZXYZXYZXYZXYZ1 expired", "ASIAXYZXYZXYZXYZXYZ1"),
    "aws_secret": (
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    "slack_bot": ("token xoxb-1234567890-0987654321-AbCdEfGhIjKl", "xoxb-1234567890-0987654321"),
    "slack_user": ("xoxp-1234567890-0987654321-abcdef", "xoxp-1234567890-0987654321-abcdef"),
    "slack_app": ("app token xapp-1-A0123456789-abcdef", "xapp-1-A0123456789-abcdef"),
    "slack_webhook": (
        "POST https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXX failed",
        "T0000/B0000/XXXXXXXXXXXX",
    ),
    "github_classic": ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrst"),
    "github_oauth": ("gho_abcdefghijklmnopqrstuvwxyz0123456789", "gho_abcdefghijklmnopqrst"),
    "github_server": ("ghs_abcdefghijklmnopqrstuvwxyz0123456789", "ghs_abcdefghijklmnopqrst"),
    "github_pat": ("github_pat_11ABCDEFG0_abcdefghijklmnopqrstuvwxyz", "github_pat_11ABCDEFG0"),
    "bearer": ("Authorization: Bearer abc123.def456-ghi789", "abc123.def456-ghi789"),
    "jwt": (
        "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW",
        "eyJzdWIiOiIxMjM0In0",
    ),
    "url_password": ("connect postgres://app:s3cr3tP4ss@db.internal:5432/orders", "s3cr3tP4ss"),
    "private_key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAxyz\n-----END RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEAxyz",
    ),
    "password_assignment": ("login failed password=hunter2 user=bob", "hunter2"),
    "secret_json": ('{"client_secret": "s3kr1t-value"}', "s3kr1t-value"),
    "api_key_yaml": ("  api_key: abcd-1234-efgh", "abcd-1234-efgh"),
    "token_assignment": ("retrying with token=tok_live_998877", "tok_live_998877"),
    "openai": ("OPENAI_API_KEY sk-proj-abcdefghijklmnopqrstuvwxyz123456", "sk-proj-abcdefghij"),
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_secret_kind_is_masked_and_restored_only_for_who_saw_it(kind: str) -> None:
    text, secret = SECRETS[kind]
    redactor = Redactor()
    masked = redactor.redact(text)
    assert secret not in masked
    assert "[REDACTED:" in masked
    assert redactor.restore(masked, visible=f"the operator pasted: {text}") == text
    assert redactor.restore(masked, visible="") == masked


def test_url_password_keeps_user_and_host() -> None:
    masked = Redactor().redact("postgres://app:s3cr3t@db.internal:5432/orders")
    assert masked == "postgres://app:[REDACTED:url_password#1]@db.internal:5432/orders"


def test_the_same_secret_gets_the_same_placeholder_and_others_a_new_one() -> None:
    redactor = Redactor()
    first = redactor.redact("password=alpha1")
    again = redactor.redact("retry password=alpha1")
    other = redactor.redact("password=beta22")
    assert first == "password=[REDACTED:secret#1]"
    assert again.endswith("[REDACTED:secret#1]")
    assert other == "password=[REDACTED:secret#2]"


def test_redacting_twice_changes_nothing_more() -> None:
    redactor = Redactor()
    once = redactor.redact("token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature-xyz")
    assert redactor.redact(once) == once


def test_restore_puts_back_only_secrets_the_audience_has_already_seen() -> None:
    redactor = Redactor()
    redactor.redact("AKIAIOSFODNN7EXAMPLE and password=hunter22")
    answer = "Rotate [REDACTED:aws_key#1] and [REDACTED:secret#1]; [REDACTED:aws_key#9] is unknown"
    seen = "I found AKIAIOSFODNN7EXAMPLE in the bucket policy"
    assert redactor.restore(answer, seen) == (
        "Rotate AKIAIOSFODNN7EXAMPLE and [REDACTED:secret#1]; [REDACTED:aws_key#9] is unknown"
    )


def test_extra_patterns_from_configuration() -> None:
    redactor = Redactor([r"cust-[0-9]{6}", r"pin (?P<secret>\d{4})"])
    masked = redactor.redact("customer cust-123456 entered pin 4321")
    assert masked == "customer [REDACTED:custom#1] entered pin [REDACTED:custom#2]"


def test_prose_and_ordinary_log_lines_are_left_alone() -> None:
    lines = [
        "read db password: open /vault/secrets/db-password: no such file or directory",
        "max_tokens: 512 and tokens=12 used",
        "GET https://api.example.com/v1/orders 200 in 41ms",
        'secret "ledger-db-credentials" not found',
    ]
    redactor = Redactor()
    assert [redactor.redact(line) for line in lines] == lines


def test_scenario_evidence_survives_redaction() -> None:
    """Redaction must not hide the words a correct diagnosis cites."""
    scenarios = Path(__file__).parents[3] / "shared" / "scenarios"
    files = sorted(scenarios.glob("*.json"))
    if not files:
        pytest.skip("shared/scenarios not present")
    for path in files:
        scenario = json.loads(path.read_text())
        text = json.dumps(scenario["observations"])
        masked = Redactor().redact(text)
        for keyword in scenario["expect"]["evidence_keywords"]:
            if keyword in text:
                assert keyword in masked, (path.name, keyword)
