"""The `opsbot` command line as a user runs it: real processes, real files, a real bot."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.app.config import load_config
from bot.app.passwords import verify_password
from tests.fakes.bot_server import free_port, run_bot
from tests.fakes.demo_service import eventually
from tests.fakes.openai_server import FakeOpenAI, tool_calls

GOOD = """\
http: {host: 127.0.0.1, port: 8099}
webhooks: {token: "${OPSBOT_T_TOKEN:-}"}
routes:
  - match: {severity: critical}
    slack: [C0INCIDENTS]
  - match: {}
services:
  checkout:
    match: {service: checkout}
    actions:
      restart: {shell: [systemctl, restart, checkout]}
      rollback: {http: {url: "http://127.0.0.1:9/rollback"}}
people:
  - {name: Ravi Kumar, aliases: [ravi], roles: [responder, approver]}
slack: {bot_token: xoxb-not-a-real-token}  # the first route posts there
"""


def opsbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OPSBOT_LOG_LEVEL": "WARNING"},
    )


async def opsbot_async(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run the CLI without blocking the event loop that serves the bot it talks to."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OPSBOT_LOG_LEVEL": "WARNING"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_help_lists_the_commands(tmp_path: Path) -> None:
    done = opsbot("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for command in ("run", "check-config", "send-test-alert", "incidents", "postmortem"):
        assert command in done.stdout, command


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.yaml"
    path.write_text(GOOD)
    done = opsbot("check-config", "--config", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert str(path) in done.stdout
    assert "OK" in done.stdout
    assert "1 services" in done.stdout


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (GOOD.replace("port: 8099", "port: eighty"), "http.port", "valid integer"),
        (
            GOOD.replace("restart: {shell", "reboot: {shell"),
            "services.checkout.actions",
            "unknown action 'reboot'",
        ),
        (
            GOOD.replace(
                "restart: {shell: [systemctl, restart, checkout]}",
                "restart: {shell: [systemctl, restart, checkout], http: {url: 'http://h'}}",
            ),
            "services.checkout.actions.restart",
            "exactly one executor",
        ),
        (GOOD.replace("  - match: {}\n", "  - match: {}\n   oops: [\n"), "line 7", "invalid YAML"),
        (
            GOOD.replace(
                'webhooks: {token: "${OPSBOT_T_TOKEN:-}"}',
                "webhooks: {mappings: {uptime: {title: '{{ payload.check. }}'}}}",
            ),
            "webhooks.mappings.uptime.title",
            "not a valid template",
        ),
        (
            GOOD.replace(
                'webhooks: {token: "${OPSBOT_T_TOKEN:-}"}',
                "webhooks: {mappings: {uptime: {title: '{{ check.name }}'}}}",
            ),
            "webhooks.mappings.uptime.title",
            "uses check",
        ),
    ],
)
def test_check_config_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    done = opsbot("check-config", "--config", str(path), cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert str(path) in done.stderr
    assert key in done.stderr, done.stderr
    assert problem in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_check_config_missing_file_is_exit_1(tmp_path: Path) -> None:
    done = opsbot("check-config", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert done.returncode == 1
    assert "nope.yaml" in done.stderr
    assert "cannot read" in done.stderr


async def test_send_test_alert_then_list_and_show(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.yaml"
    path.write_text(f"storage: {{url: 'sqlite:///{tmp_path / 'bot.db'}'}}\n")
    async with run_bot(load_config(path)) as bot:
        code, out, err = await opsbot_async("send-test-alert", "--url", bot.url, cwd=tmp_path)
        assert code == 0, err
        assert out.startswith("200 ")
        (incident_id,) = json.loads(out.split(" ", 1)[1])["incidents"]
        api = (await bot.client.get("/api/incidents")).json()["incidents"]
        assert [i["id"] for i in api] == [incident_id]

    done = opsbot("incidents", "list", "--config", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split()[:3] == ["ID", "STATUS", "SEVERITY"]
    assert row.split()[:4] == ["#1", "triggered", "critical", "checkout"]

    listed = opsbot("incidents", "list", "-o", "json", "--config", str(path), cwd=tmp_path)
    assert [i["id"] for i in json.loads(listed.stdout)] == [incident_id]

    for ref in ("1", "#1", incident_id):
        shown = opsbot("incidents", "show", ref, "--config", str(path), cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        detail = json.loads(shown.stdout)
        assert (detail["id"], detail["status"], detail["short_id"]) == (incident_id, "triggered", 1)
        assert detail["timeline"][0]["kind"] == "triggered"

    missing = opsbot("incidents", "show", "42", "--config", str(path), cwd=tmp_path)
    assert missing.returncode == 1
    assert "no incident 42" in missing.stderr


async def test_send_test_alert_uses_the_webhook_token(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.yaml"
    path.write_text(
        f"storage: {{url: 'sqlite:///{tmp_path / 'bot.db'}'}}\nwebhooks: {{token: hush}}\n"
    )
    async with run_bot(load_config(path)) as bot:
        code, out, _ = await opsbot_async("send-test-alert", "--url", bot.url, cwd=tmp_path)
        assert code == 1
        assert out.startswith("401 ")
        code, out, err = await opsbot_async(
            "send-test-alert", "--url", bot.url, "--token", "hush", cwd=tmp_path
        )
        assert code == 0, err
        assert out.startswith("200 ")


def test_send_test_alert_to_nothing_says_so(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = opsbot("send-test-alert", "--url", url, cwd=tmp_path)
    assert done.returncode == 1
    assert f"cannot reach {url}" in done.stderr
    assert "Traceback" not in done.stderr


def public_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "public.yaml"
    path.write_text(
        f"http: {{host: 0.0.0.0, port: {free_port()}}}\n"
        f"storage: {{url: 'sqlite:///{tmp_path / 'bot.db'}'}}\n{extra}"
    )
    return path


def test_run_refuses_a_public_bind_without_a_webhook_token(tmp_path: Path) -> None:
    path = public_config(tmp_path)
    refused = opsbot("run", "--config", str(path), cwd=tmp_path)
    assert refused.returncode == 1
    assert "webhooks.token" in refused.stderr
    assert "webhooks.allow_unauthenticated" in refused.stderr
    assert not (tmp_path / "bot.db").exists()  # refused before anything started

    checked = opsbot("check-config", "--config", str(path), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.startswith("warning: ") and "webhooks.token" in checked.stderr


@pytest.mark.parametrize(
    "extra", ["webhooks: {allow_unauthenticated: true}\n", "webhooks: {token: hush}\n"]
)
async def test_a_public_bind_starts_with_a_token_or_the_opt_out(tmp_path: Path, extra: str) -> None:
    path = public_config(tmp_path, extra)
    checked = opsbot("check-config", "--config", str(path), cwd=tmp_path)
    assert (checked.returncode, checked.stderr) == (0, "")
    port = load_config(path).http.port
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(path),
        cwd=tmp_path,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "OPSBOT_LOG_LEVEL": "WARNING"},
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    assert proc.returncode is None, "opsbot run exited"
                    return False

            await eventually(healthy, timeout_s=90)  # a ceiling: start-up is slow on a busy machine
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


def test_hash_password_makes_a_hash_the_config_accepts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "hash-password"],
        input="correct horse\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert verify_password("correct horse", digest)
    assert not verify_password("wrong horse", digest)
    path = tmp_path / "people.yaml"
    path.write_text(f"people: [{{name: Ravi, console: {{password_hash: '{digest}'}}}}]\n")
    assert opsbot("check-config", "--config", str(path), cwd=tmp_path).returncode == 0
    path.write_text("people: [{name: Ravi, console: {password_hash: 'plaintext'}}]\n")
    bad = opsbot("check-config", "--config", str(path), cwd=tmp_path)
    assert bad.returncode == 1
    assert "people.0.console.password_hash" in bad.stderr


def test_eval_llm_runs_the_pipeline_as_configured(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """`opsbot eval --llm` uses llm.max_tool_rounds, the timeout and max_tokens from the config, as
    `opsbot run` does; a model that never answers properly ends in the offline diagnosis."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    scenario = {
        "id": "worker-oom",
        "title": "worker killed for memory",
        "source": "generic",
        "payload": {"service": "worker", "alert_type": "oom", "severity": "critical"},
        "observations": {
            "logs": [
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"
            ]
        },
        "expect": {"category": "memory_leak", "action": "restart", "evidence_keywords": []},
    }
    (scenarios / "worker-oom.json").write_text(json.dumps(scenario))
    config = tmp_path / "opsbot.yaml"
    config.write_text(
        "llm:\n"
        f"  providers: [{{name: local, base_url: '{fake_openai.base_url}', api_key: k, "
        "model: tiny, max_tokens: 300}]\n"
        "  max_tool_rounds: 1\n"
        "  investigation_timeout_s: 600\n"
    )
    fake_openai.default = tool_calls(("logs", {}))  # a model that only ever calls tools

    done = opsbot("eval", str(scenarios), "--llm", "--json", "--config", str(config), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert (result["source"], result["category"]) == ("offline", "memory_leak")
    # what the model cost is reported though its answers were set aside, and why they were
    assert result["prompt_tokens"] > 0
    assert any(note.startswith("llm:") for note in result["notes"])
    # One tool round, the final ask, one repair: the default (4 rounds) would send 6.
    assert len(fake_openai.requests) == 3
    # the provider's cap on each answer reaches the endpoint, so a rambling model stops
    assert {r.get("max_tokens") for r in fake_openai.requests} == {300}


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_route_to_a_platform_without_credentials_is_refused(tmp_path: Path, command: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"storage: {{url: 'sqlite:///{tmp_path / 'bot.db'}'}}\n"
        "routes:\n"
        "  - match: {severity: critical}\n"
        "    discord: ['112233445566778899']\n"
        "  - match: {}\n"
        "    whatsapp: [ravi]\n"
    )
    done = opsbot(command, "--config", str(path), cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert f"{path}: routes[0].discord" in done.stderr and "discord.bot_token" in done.stderr
    assert f"{path}: routes[1].whatsapp" in done.stderr
    assert "whatsapp.account_sid and whatsapp.auth_token are not set" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "bot.db").exists()  # refused before anything started


async def test_migrate_creates_the_schema_once_then_says_it_is_current(
    tmp_path: Path, pg_url: str
) -> None:
    config = tmp_path / "opsbot.yaml"
    config.write_text(f"storage: {{url: '{pg_url}'}}\n")
    first = await opsbot_async("migrate", "--config", str(config), cwd=tmp_path)
    again = await opsbot_async("migrate", "--config", str(config), cwd=tmp_path)
    assert first[0] == 0 and again[0] == 0, (first, again)
    assert first[1].startswith("store migrated from revision (empty) to ")
    head = first[1].split()[-1]
    assert again[1] == f"store already at revision {head}\n"


def test_migrate_names_an_unreachable_store(tmp_path: Path) -> None:
    config = tmp_path / "opsbot.yaml"
    config.write_text(f"storage: {{url: 'postgresql://postgres@127.0.0.1:{free_port()}/x'}}\n")
    done = opsbot("migrate", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot migrate the store:"), done.stderr
