"""The `opsbot` command line (typer): run, migrate, demo, check-config, eval, incidents,
postmortem."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app import logs
from bot.app.config import Config, ConfigError, load_config
from bot.app.exposure import open_doors
from bot.incidents.models import Incident

T = TypeVar("T")
app = typer.Typer(
    help="opsbot: alerts become chat threads, an agent diagnoses, people act.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would print config tokens on a crash
)
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="YAML config (else $OPSBOT_CONFIG, else config/opsbot.yaml)"
    ),
]


def _load(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _load_reachable(path: Path | None) -> Config:
    """The configuration, refused when a route names a platform that cannot be reached."""
    from bot.chat.adapters import PLATFORMS, route_problems

    cfg = _load(path)
    problems = route_problems(cfg, {p.name for p in PLATFORMS if p.build is not None})
    if problems:
        typer.echo(f"error: {len(problems)} configuration error(s)", err=True)
        for problem in problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1)
    return cfg


def serve(cfg: Config, after_start: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
    """Run the HTTP server and everything behind it until SIGTERM/SIGINT."""
    # uvicorn re-raises SIGTERM after its graceful shutdown: exit 0 through `finally` blocks
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from bot.app.runtime import Runtime
    from bot.app.server.app import BotServer, create_app, server_config

    async def main() -> None:
        runtime = await Runtime.create(cfg)
        if after_start is not None:
            runtime.after_start.append(after_start)
        server = BotServer(
            runtime,
            server_config(
                create_app(runtime), cfg.http.host, cfg.http.port, timeout_graceful_shutdown=10
            ),
        )
        # Everything imported and built so far lives as long as the process: out of the
        # collector's sight, a full collection no longer walks it (a 100-150 ms pause that
        # set the p99 of webhook answers under load).
        gc.collect()
        gc.freeze()
        await server.serve()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where installed (uvicorn[standard] brings it), as uvicorn's loop="auto" picks."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@app.command()
def run(config: ConfigOpt = None) -> None:
    """The bot process: HTTP server, chat adapters, workers, scheduler."""
    logs.setup()
    cfg = _load_reachable(config)
    for problem in open_doors(cfg):
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1)
    where = cfg.source_path or "embedded default (SQLite ./opsbot.db, web console, offline agent)"
    typer.echo(
        f"opsbot: config {where}; listening on http://{cfg.http.host}:{cfg.http.port}", err=True
    )
    serve(cfg)


@app.command()
def migrate(config: ConfigOpt = None) -> None:
    """Apply the store's migrations (replicas run them under a lock at start-up too)."""
    from bot.errors import StoreUnavailable
    from bot.store import Store

    cfg = _load(config)

    async def upgrade() -> tuple[str | None, str | None]:
        store = await Store.open(cfg.storage.url, migrate=False)
        try:
            return await store.migrate()
        finally:
            await store.close()

    try:
        before, after = asyncio.run(upgrade())
    except StoreUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if before == after:
        typer.echo(f"store already at revision {after}")
    else:
        typer.echo(f"store migrated from revision {before or '(empty)'} to {after}")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="the bot's port")] = 8080,
    shop_port: Annotated[int, typer.Option(help="the demo service's port")] = 9000,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="where the demo keeps its database and logs")
    ] = None,
) -> None:
    """The embedded default end to end: bot + console + a failing demo service + a first alert."""
    import tempfile

    from bot.app import demo as demo_mod

    logs.setup()
    where = directory or Path(tempfile.mkdtemp(prefix="opsbot-demo-"))
    where.mkdir(parents=True, exist_ok=True)
    shop_url = f"http://127.0.0.1:{shop_port}"
    demo_mod.start_service(where, shop_port)
    if not demo_mod.wait_healthy(f"{shop_url}/health"):
        demo_mod.stop_service(where)
        typer.echo(f"error: the demo service did not start on port {shop_port}", err=True)
        raise typer.Exit(1)
    bot_url = f"http://127.0.0.1:{port}"
    typer.echo(
        f"opsbot demo: console {bot_url}/ · demo-shop {shop_url} · data in {where}\n"
        "  In a few seconds demo-shop runs out of memory and an incident opens with its diagnosis.\n"
        '  Type "restart it" in the incident and click Approve. Ctrl-C stops everything.'
    )
    try:
        serve(
            demo_mod.demo_config(where, port, shop_port),
            lambda: demo_mod.fire_first_alert(bot_url, shop_url),
        )
    finally:
        demo_mod.stop_service(where)


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the configuration; exit 1 with errors naming file, key and problem."""
    cfg = _load_reachable(config)
    for problem in open_doors(cfg):
        typer.echo(f"warning: {problem}", err=True)
    typer.echo(
        f"{cfg.source_path or '(embedded default)'}: OK — {len(cfg.services)} services, "
        f"{len(cfg.routes)} routes, {len(cfg.people)} people, "
        f"{len(cfg.llm.providers)} LLM providers"
    )


@app.command("hash-password")
def hash_password_cmd() -> None:
    """Print a hash for people[].console.password_hash (password from the prompt or stdin)."""
    from bot.app.passwords import hash_password

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        typer.echo("error: an empty password is no password", err=True)
        raise typer.Exit(1)
    typer.echo(hash_password(password))


def _sample_alert() -> dict[str, object]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    labels = {
        "alertname": "HighErrorRate",
        "service": "checkout",
        "severity": "critical",
        "namespace": "prod",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate", service="checkout"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "opsbot",
        "groupLabels": {"alertname": "HighErrorRate", "service": "checkout"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": "checkout 5xx ratio above 5% for 5m",
                    "description": "Test alert sent by `opsbot send-test-alert`.",
                },
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.local:9090/graph",
                "fingerprint": "0a1b2c3d4e5f6a7b",
            }
        ],
    }


@app.command("eval")
def eval_scenarios(
    directory: Annotated[Path, typer.Argument(help="folder of scenario *.json files")],
    llm: Annotated[
        bool, typer.Option("--llm", help="diagnose with the configured LLM chain")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    config: ConfigOpt = None,
) -> None:
    """Replay scenario files through the diagnosis pipeline and score them."""
    from agent.eval import (
        Pipeline,
        ScenarioError,
        format_report,
        llm_pipeline,
        offline_pipeline,
        run_eval,
    )
    from agent.pipeline import DiagnosisPipeline
    from bot.app.wiring import pipeline_settings, provider_chain

    if not directory.is_dir():
        typer.echo(f"error: {directory} is not a directory", err=True)
        raise typer.Exit(2)
    logs.setup("WARNING")
    diagnose: Pipeline = offline_pipeline
    if llm:
        cfg = _load(config)
        chain = provider_chain(cfg.llm)
        if chain is None:
            typer.echo(
                "error: --llm needs llm.providers in the config (or OPENAI_API_KEY)", err=True
            )
            raise typer.Exit(2)
        diagnose = llm_pipeline(DiagnosisPipeline(chain, None, pipeline_settings(cfg)))
    try:
        report = asyncio.run(run_eval(directory, diagnose))
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(report.model_dump_json() if as_json else format_report(report))


@app.command("send-test-alert")
def send_test_alert(
    url: Annotated[str, typer.Option(help="the bot's base URL")] = "http://127.0.0.1:8080",
    token: Annotated[
        str, typer.Option(envvar="OPSBOT_WEBHOOK_TOKEN", help="webhook bearer token")
    ] = "",
) -> None:
    """Post a sample Alertmanager notification to a running bot."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.post(
            f"{url.rstrip('/')}/webhooks/alertmanager",
            json=_sample_alert(),
            headers=headers,
            timeout=10,
        )
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{resp.status_code} {resp.text}")
    raise typer.Exit(0 if resp.is_success else 1)


async def _with_store(cfg: Config, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    from bot.store import Store

    store = await Store.open(cfg.storage.url)
    try:
        async with store.read() as conn:
            return await fn(conn)
    finally:
        await store.close()


def _age(iso_ts: str | None) -> str:
    if not iso_ts:
        return "-"
    secs = (
        datetime.now(UTC) - datetime.fromisoformat(iso_ts.replace("Z", "+00:00"))
    ).total_seconds()
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n:
            return f"{int(secs // n)}{unit}"
    return f"{int(secs)}s"


@app.command()
def incidents(
    action: Annotated[str, typer.Argument(help="list | show")] = "list",
    ref: Annotated[str | None, typer.Argument(help="incident id or short id (#42)")] = None,
    status: Annotated[str | None, typer.Option(help="triggered | acknowledged | resolved")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table | json")] = "table",
    config: ConfigOpt = None,
) -> None:
    """Incidents from the store: `list` (default) or `show ID`."""
    from bot.errors import NotFound
    from bot.incidents import lifecycle as inc_mod

    cfg = _load(config)
    if action == "list":
        found = asyncio.run(_with_store(cfg, lambda c: inc_mod.list_incidents(c, status)))
        rows = [i.to_json() for i in found]
        if output == "json":
            typer.echo(json.dumps(rows, indent=2))
            return
        typer.echo(
            f"{'ID':<6} {'STATUS':<13} {'SEVERITY':<9} {'SERVICE':<20} "
            f"{'AGE':<5} {'ALERTS':<6} TITLE"
        )
        for r in rows:
            typer.echo(
                f"#{r['short_id']:<5} {r['status']:<13} {r['severity']:<9} "
                f"{(r['service'] or '-')[:20]:<20} "
                f"{_age(r['created_at']):<5} {r['alert_count']:<6} {r['title']}"
            )
        return
    if action != "show" or not ref:
        typer.echo("usage: opsbot incidents [list | show ID]", err=True)
        raise typer.Exit(2)

    async def show(conn: AsyncConnection) -> dict[str, Any]:
        return await inc_mod.detail(conn, await inc_mod.find(conn, ref))

    try:
        data = asyncio.run(_with_store(cfg, show))
    except NotFound as exc:
        typer.echo(f"error: no incident {ref}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def postmortem(
    ref: Annotated[str, typer.Argument(help="incident id or short id")], config: ConfigOpt = None
) -> None:
    """Print an incident's postmortem (Markdown)."""
    from sqlalchemy import select

    from bot.errors import NotFound
    from bot.incidents import lifecycle as inc_mod
    from bot.store import schema as t

    cfg = _load(config)

    async def fetch(conn: AsyncConnection) -> tuple[Incident, str | None]:
        inc = await inc_mod.find(conn, ref)
        return inc, await conn.scalar(
            select(t.postmortems.c.markdown).where(t.postmortems.c.incident_id == inc.id)
        )

    try:
        inc, md = asyncio.run(_with_store(cfg, fetch))
    except NotFound as exc:
        typer.echo(f"error: no incident {ref}", err=True)
        raise typer.Exit(1) from exc
    if md is None:
        typer.echo(
            f"incident #{inc.short_id} has no postmortem yet (it is {inc.status.value})", err=True
        )
        raise typer.Exit(1)
    sys.stdout.write(md if md.endswith("\n") else md + "\n")
