"""Configuration: ${ENV} interpolation, the ecosystems' environment variables without a file,
where the file is found, route matching, and errors that name file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app.config import ConfigError, interpolate, load_config

ECOSYSTEM_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "DISCORD_BOT_TOKEN",
    "DISCORD_PUBLIC_KEY",
    "DISCORD_APPLICATION_ID",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "JIRA_URL",
    "JIRA_USERNAME",
    "JIRA_API_TOKEN",
    "OPSBOT_WEBHOOK_TOKEN",
    "OPSBOT_ADMIN_TOKEN",
    "OPSBOT_CONFIG",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ecosystem variables, and a working directory without config/opsbot.yaml."""
    for var in ECOSYSTEM_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_interpolation_of_set_defaulted_and_missing_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSBOT_T_SET", "from-env")
    monkeypatch.setenv("OPSBOT_T_EMPTY", "")
    monkeypatch.delenv("OPSBOT_T_MISSING", raising=False)
    assert interpolate("a ${OPSBOT_T_SET} b") == "a from-env b"
    assert interpolate("${OPSBOT_T_SET:-fallback}") == "from-env"
    assert interpolate("${OPSBOT_T_MISSING:-fallback}") == "fallback"
    assert interpolate("${OPSBOT_T_EMPTY:-fallback}") == "fallback"
    assert interpolate("${OPSBOT_T_MISSING:-}") == ""
    assert interpolate("[${OPSBOT_T_MISSING}]") == "[]"
    assert interpolate("${OPSBOT_T_MISSING:-http://h:9/x}") == "http://h:9/x"
    assert interpolate("$OPSBOT_T_SET and ${not a var}") == "$OPSBOT_T_SET and ${not a var}"


def test_file_values_are_interpolated_before_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSBOT_T_PORT", "9191")
    monkeypatch.setenv("OPSBOT_WEBHOOK_TOKEN", "tok-123")
    path = write(
        tmp_path / "opsbot.yaml",
        "http: {port: ${OPSBOT_T_PORT}, host: '${OPSBOT_T_HOST:-0.0.0.0}'}\n"
        'webhooks: {token: "${OPSBOT_WEBHOOK_TOKEN:-}"}\n'
        'slack: {bot_token: "${OPSBOT_T_UNSET}"}\n',
    )
    cfg = load_config(path)
    assert (cfg.http.port, cfg.http.host) == (9191, "0.0.0.0")
    assert cfg.webhooks.token == "tok-123"
    assert cfg.slack.bot_token == ""
    assert not cfg.slack.enabled
    assert cfg.source_path == str(path)


def test_ecosystem_variables_work_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "sig")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC1")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tw")
    monkeypatch.setenv("JIRA_URL", "http://127.0.0.1:1/jira")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:2/v1")
    cfg = load_config()
    assert cfg.source_path is None
    assert (cfg.slack.bot_token, cfg.slack.signing_secret) == ("xoxb-1", "sig")
    assert cfg.slack.enabled and cfg.whatsapp.enabled and cfg.jira.enabled
    assert not cfg.discord.enabled
    (provider,) = cfg.llm.providers
    assert (provider.api_key, provider.base_url) == ("sk-1", "http://127.0.0.1:2/v1")
    assert cfg.storage.url == "sqlite:///./opsbot.db"


def test_discord_variables_work_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "ab" * 32
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "bot-token")
    monkeypatch.setenv("DISCORD_APPLICATION_ID", "1100000000000000001")
    monkeypatch.setenv("DISCORD_PUBLIC_KEY", key)
    cfg = load_config()
    assert cfg.discord.enabled
    assert (cfg.discord.application_id, cfg.discord.public_key) == ("1100000000000000001", key)
    assert cfg.discord.api_url == "https://discord.com/api/v10" and cfg.discord.gateway


def test_embedded_default_without_file_or_variables() -> None:
    cfg = load_config()
    assert cfg.source_path is None
    assert (cfg.http.host, cfg.http.port) == ("127.0.0.1", 8080)
    assert cfg.console.enabled
    assert cfg.llm.providers == []
    assert not (cfg.slack.enabled or cfg.discord.enabled or cfg.whatsapp.enabled)


def test_file_values_win_over_variables_which_fill_blanks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-env")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "sig-env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    path = write(
        tmp_path / "c.yaml",
        "slack: {bot_token: xoxb-file}\nllm: {providers: [{name: local, base_url: 'http://x/v1'}]}\n",
    )
    cfg = load_config(path)
    assert cfg.slack.bot_token == "xoxb-file"
    assert cfg.slack.signing_secret == "sig-env"
    assert [p.name for p in cfg.llm.providers] == ["local"]


def test_config_is_found_by_flag_then_variable_then_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = write(tmp_path / "config" / "opsbot.yaml", "http: {port: 1001}\n")
    by_env = write(tmp_path / "env.yaml", "http: {port: 1002}\n")
    by_flag = write(tmp_path / "flag.yaml", "http: {port: 1003}\n")
    assert load_config().http.port == 1001
    assert load_config().source_path == str(Path("config/opsbot.yaml"))
    monkeypatch.setenv("OPSBOT_CONFIG", str(by_env))
    assert load_config().http.port == 1002
    assert load_config(by_flag).http.port == 1003
    assert default.exists()


def test_routes_first_match_wins() -> None:
    path = write(
        Path("routes.yaml"),
        "routes:\n"
        "  - match: {severity: critical, team: payments}\n"
        "    slack: [C-PAY-PAGE]\n"
        "  - match: {severity: critical}\n"
        "    slack: [C-PAGE]\n"
        "  - match: {}\n"
        "    slack: [C-ALL]\n"
        "  - match: {team: payments}\n"
        "    slack: [C-NEVER]\n",
    )
    cfg = load_config(path)

    def channels(labels: dict[str, str]) -> list[str]:
        route = cfg.route_for(labels)
        assert route is not None
        return route.slack

    assert channels({"severity": "critical", "team": "payments"}) == ["C-PAY-PAGE"]
    assert channels({"severity": "critical", "team": "web"}) == ["C-PAGE"]
    assert channels({"team": "payments", "severity": "warning"}) == ["C-ALL"]
    assert channels({}) == ["C-ALL"]


def test_a_severity_match_compares_levels_so_high_still_routes() -> None:
    """A config written when `high` was a level of its own, or in a sender's words, routes
    critical incidents; an incident stored with `high` or Alertmanager's `page` still matches
    a `critical` route and an escalation policy."""
    path = write(
        Path("sev.yaml"),
        "routes:\n"
        "  - {match: {severity: high}, slack: [C-HIGH]}\n"
        "  - {match: {severity: P3}, slack: [C-WARN]}\n"
        "  - {match: {severity: critical}, slack: [C-PAGE]}\n"
        "  - {match: {severity: bananas}, slack: [C-ODD]}\n"
        "people: [{name: Ravi Kumar, aliases: [ravi]}]\n"
        "oncall:\n"
        "  policies:\n"
        "    page: {match: {severity: critical}, steps: [{notify: [ravi]}]}\n",
    )
    cfg = load_config(path)

    def channels(labels: dict[str, str]) -> list[str] | None:
        route = cfg.route_for(labels)
        return route.slack if route else None

    assert channels({"severity": "critical"}) == ["C-HIGH"]
    assert channels({"severity": "high"}) == ["C-HIGH"]
    assert channels({"severity": "warning"}) == ["C-WARN"]
    assert channels({"severity": "bananas"}) == ["C-ODD"]
    assert channels({"severity": "info"}) is None
    assert cfg.escalation_for({"severity": "page"}) == "page"
    assert cfg.escalation_for({"severity": "high"}) == "page"
    assert cfg.escalation_for({"severity": "info"}) is None


def test_no_matching_route_when_there_is_no_catch_all() -> None:
    cfg = load_config(write(Path("r.yaml"), "routes: [{match: {env: prod}, slack: [C1]}]\n"))
    assert cfg.route_for({"env": "staging"}) is None
    assert cfg.route_for({"env": "prod", "x": "y"}) is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http: {port: eighty}\n", ["http.port", "integer"]),
        ("http: {prot: 80}\n", ["http.prot", "Extra inputs"]),
        (
            "services:\n  checkout:\n    actions:\n      reboot: {shell: [reboot]}\n",
            ["services.checkout.actions", "unknown action 'reboot'"],
        ),
        (
            "services:\n  checkout:\n    actions:\n"
            "      restart: {shell: [x], http: {url: 'http://h'}}\n",
            ["services.checkout.actions.restart", "exactly one executor"],
        ),
        (
            "people:\n  - {name: Ravi, aliases: [rk]}\n  - {name: Rk}\n",
            ["used twice", "'rk'"],
        ),
        ("routes:\n  - match: {severity: critical}\n   slack: [C1]\n", ["invalid YAML", "line 3"]),
        ("- just\n- a list\n", ["top level must be a mapping"]),
        ("discord: {public_key: not-a-key}\n", ["discord.public_key", "64 hexadecimal"]),
    ],
)
def test_errors_name_the_file_the_key_and_the_problem(text: str, expected: list[str]) -> None:
    path = write(Path("bad.yaml"), text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "bad.yaml" in message
    for part in expected:
        assert part in message, (part, message)


def test_unreadable_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_config(Path("missing.yaml"))


def test_a_kubernetes_alert_finds_its_service_config_by_workload_labels(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.yaml"
    path.write_text(
        "services:\n  checkout: {health_url: 'http://127.0.0.1:9/health'}\n"
        "  api: {health_url: 'http://127.0.0.1:9/health'}\n"
    )
    cfg = load_config(path)
    crash = {"alertname": "KubePodCrashLooping", "pod": "checkout-7d9f6c-x2", "container": "api"}
    assert cfg.service_for(crash) == "api"  # container comes before pod by default
    path.write_text(path.read_text() + "webhooks:\n  service_labels: [service, pod]\n")
    assert load_config(path).service_for(crash) == "checkout"
    assert load_config(path).service_for({"alertname": "x"}) is None
