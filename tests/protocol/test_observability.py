"""Observability clients against local fake APIs (httpx) and moto's AWS server (boto3)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from integrations.errors import PermanentError, RateLimited, TransientError
from integrations.observability.cloudwatch import CloudWatchMetric, CloudWatchMetricsSource
from integrations.observability.github import GitHubDeploySource
from integrations.observability.health import HttpHealthSource
from integrations.observability.logs import (
    CloudWatchLogSource,
    FileLogSource,
    HttpLogSource,
    LokiLogSource,
)
from integrations.observability.prometheus import PrometheusSource
from integrations.observability.sentry import SentryErrorSource
from tests.fakes.observability_servers import (
    FakeHttpServer,
    gh_commit,
    gh_deployment,
    gh_pull,
    sentry_issue,
    serve_github,
    serve_log_tail,
    serve_loki,
    serve_prometheus,
    serve_sentry,
)

NOW = 1_750_000_000.0
NS = 1_000_000_000


def at_now() -> float:
    return NOW


# --- failure modes every HTTP source shares: one table, each source's own request.

HttpCall = Callable[[str], Any]

HTTP_SOURCES: dict[str, tuple[str, HttpCall]] = {
    "log tail": ("/logs/tail", lambda base: HttpLogSource(base + "/logs/tail").tail(10)),
    "loki": (
        "/loki/api/v1/query_range",
        lambda base: LokiLogSource(base, '{app="checkout"}').tail(10),
    ),
    "prometheus": (
        "/api/v1/query_range",
        lambda base: PrometheusSource(base, {"errors": "up"}).series(300, 15),
    ),
    "github": (
        "/repos/acme/checkout/commits",
        lambda base: GitHubDeploySource("acme/checkout", api_url=base).recent(60),
    ),
    "sentry": (
        "/api/0/projects/acme/checkout/issues/",
        lambda base: SentryErrorSource("acme/checkout", api_url=base + "/api/0").top_issues(5),
    ),
}
SOURCES = sorted(HTTP_SOURCES)


@pytest.mark.parametrize("source", SOURCES)
async def test_unreachable_service_is_transient(source: str, refused_url: str) -> None:
    _, call = HTTP_SOURCES[source]
    with pytest.raises(TransientError, match="cannot reach"):
        await call(refused_url)


@pytest.mark.parametrize("source", SOURCES)
async def test_server_error_is_transient(source: str, obs_http: FakeHttpServer) -> None:
    path, call = HTTP_SOURCES[source]
    obs_http.reply(path, status=502, text="upstream connect error")
    with pytest.raises(TransientError, match="502") as caught:
        await call(obs_http.url)
    assert not isinstance(caught.value, RateLimited)


@pytest.mark.parametrize("source", SOURCES)
async def test_429_carries_retry_after(source: str, obs_http: FakeHttpServer) -> None:
    path, call = HTTP_SOURCES[source]
    obs_http.reply(path, status=429, json_body={"error": "slow down"}, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as caught:
        await call(obs_http.url)
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("source", SOURCES)
async def test_404_is_permanent_and_says_not_found(source: str, obs_http: FakeHttpServer) -> None:
    _, call = HTTP_SOURCES[source]  # nothing mounted: the fake answers 404
    with pytest.raises(PermanentError, match="not found"):
        await call(obs_http.url)


@pytest.mark.parametrize("source", ["loki", "prometheus", "github", "sentry"])
async def test_body_that_is_not_json_is_permanent(source: str, obs_http: FakeHttpServer) -> None:
    path, call = HTTP_SOURCES[source]
    obs_http.reply(path, text="<html>captive portal</html>")
    with pytest.raises(PermanentError, match="captive portal"):
        await call(obs_http.url)


async def test_timeout_is_transient(silent_url: str) -> None:
    source = HttpLogSource(silent_url + "/logs", timeout_s=0.2)
    with pytest.raises(TransientError, match="no answer"):
        await source.tail(5)


async def test_shared_client_is_used_and_left_open(obs_http: FakeHttpServer) -> None:
    url = serve_log_tail(obs_http, ["a", "b"])
    async with httpx.AsyncClient(headers={"User-Agent": "opsbot-test"}) as client:
        assert await HttpLogSource(url, client=client).tail(5) == ["a", "b"]
        assert await HttpLogSource(url, client=client).tail(1) == ["b"]
    assert obs_http.seen[0].headers["user-agent"] == "opsbot-test"


# --- logs


def write_lines(path: Path, lines: list[str], trailing_newline: bool = True) -> None:
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""), encoding="utf-8")


@pytest.mark.parametrize("trailing_newline", [True, False])
async def test_file_tail_reads_last_lines_across_chunks(
    tmp_path: Path, trailing_newline: bool
) -> None:
    log = tmp_path / "app.log"
    lines = [f"2025-01-01T00:00:{i % 60:02d} INFO request {i} ok ünïcode" for i in range(5000)]
    write_lines(log, lines, trailing_newline)
    source = FileLogSource(log, chunk_bytes=1000)
    assert await source.tail(3) == lines[-3:]
    assert await source.tail(200) == lines[-200:]


async def test_file_tail_of_short_file_returns_everything(tmp_path: Path) -> None:
    log = tmp_path / "short.log"
    log.write_bytes(b"first\r\nsecond\r\n")
    assert await FileLogSource(log).tail(10) == ["first", "second"]


async def test_file_tail_stops_at_max_bytes_without_a_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "long.log"
    write_lines(log, ["x" * 10_000, "short one", "short two"])
    assert await FileLogSource(log, chunk_bytes=64, max_bytes=128).tail(5) == [
        "short one",
        "short two",
    ]


async def test_missing_log_file_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="No such file"):
        await FileLogSource(tmp_path / "nope.log").tail(5)


@pytest.mark.parametrize("style", ["text", "json_list", "json_object"])
async def test_http_log_tail_formats(obs_http: FakeHttpServer, style: str) -> None:
    lines = [f"line {i}" for i in range(50)]
    url = serve_log_tail(obs_http, lines, style=style)
    source = HttpLogSource(url + "?service=checkout", headers={"Authorization": "Bearer t0k"})
    assert await source.tail(4) == lines[-4:]
    seen = obs_http.seen[-1]
    assert seen.params == {"service": "checkout", "lines": "4"}
    assert seen.headers["authorization"] == "Bearer t0k"


async def test_http_log_tail_trims_when_endpoint_ignores_lines(obs_http: FakeHttpServer) -> None:
    obs_http.reply("/logs", json_body=["a", {"level": "error", "msg": "boom"}, "c"])
    source = HttpLogSource(obs_http.url + "/logs")
    assert await source.tail(2) == ['{"level": "error", "msg": "boom"}', "c"]


async def test_http_log_tail_rejects_unexpected_json(obs_http: FakeHttpServer) -> None:
    obs_http.reply("/logs", json_body={"entries": ["a"]})
    with pytest.raises(PermanentError, match="expected a JSON list of lines"):
        await HttpLogSource(obs_http.url + "/logs").tail(2)


async def test_loki_merges_streams_newest_lines_oldest_first(obs_http: FakeHttpServer) -> None:
    t0 = int(NOW * NS) - 60 * NS
    url = serve_loki(
        obs_http,
        {
            '{"app": "checkout", "pod": "a"}': [(t0 + i * NS, f"a{i}") for i in range(0, 10, 2)],
            '{"app": "checkout", "pod": "b"}': [(t0 + i * NS, f"b{i}") for i in range(1, 10, 2)],
            '{"app": "checkout", "pod": "old"}': [(t0 - 7200 * NS, "too old")],
        },
    )
    source = LokiLogSource(url, '{app="checkout"}', now=at_now, window_s=3600)
    assert await source.tail(4) == ["a6", "b7", "a8", "b9"]
    assert await source.tail(100) == [f"{'ab'[i % 2]}{i}" for i in range(10)]
    params = obs_http.requests_to("/loki/api/v1/query_range")[0].params
    assert params["direction"] == "backward"
    assert params["limit"] == "4"
    assert int(params["end"]) == int(NOW * NS)
    assert int(params["end"]) - int(params["start"]) == 3600 * NS


async def test_loki_query_error_is_permanent_with_lokis_message(obs_http: FakeHttpServer) -> None:
    url = serve_loki(obs_http, {})
    with pytest.raises(PermanentError, match="parse error"):
        await LokiLogSource(url, "not logql").tail(5)


async def test_loki_metric_query_is_refused(obs_http: FakeHttpServer) -> None:
    obs_http.reply(
        "/loki/api/v1/query_range",
        json_body={"status": "success", "data": {"resultType": "matrix", "result": []}},
    )
    with pytest.raises(PermanentError, match="metric query"):
        await LokiLogSource(obs_http.url, 'rate({app="x"}[1m])').tail(5)


async def test_cloudwatch_logs_tail(obs_aws: str) -> None:
    logs = boto3.client("logs", region_name="us-east-1", endpoint_url=obs_aws)
    logs.create_log_group(logGroupName="/ecs/checkout")
    logs.create_log_stream(logGroupName="/ecs/checkout", logStreamName="task-1")
    now_ms = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="/ecs/checkout",
        logStreamName="task-1",
        logEvents=[
            {"timestamp": now_ms - (30 - i) * 1000, "message": f"event {i}\n"} for i in range(30)
        ],
    )
    source = CloudWatchLogSource("/ecs/checkout", "us-east-1", endpoint_url=obs_aws)
    assert await source.tail(3) == ["event 27", "event 28", "event 29"]


async def test_cloudwatch_logs_missing_group_is_permanent(obs_aws: str) -> None:
    source = CloudWatchLogSource("/ecs/ghost", "us-east-1", endpoint_url=obs_aws)
    with pytest.raises(PermanentError, match="ResourceNotFoundException"):
        await source.tail(3)


async def test_cloudwatch_unreachable_is_transient(obs_aws: str, refused_url: str) -> None:
    source = CloudWatchLogSource("/ecs/checkout", "us-east-1", endpoint_url=refused_url)
    with pytest.raises(TransientError, match="cannot reach AWS logs"):
        await source.tail(3)


# --- metrics


def matrix(labels: dict[str, str], values: list[tuple[float, str]]) -> dict[str, Any]:
    return {"metric": labels, "values": [[t, v] for t, v in values]}


async def test_prometheus_series_keeps_the_worst_series(obs_http: FakeHttpServer) -> None:
    url = serve_prometheus(
        obs_http,
        {
            "error_ratio": [
                matrix({"instance": "a"}, [(NOW - 30, "0.50"), (NOW, "0.01")]),
                matrix({"instance": "b"}, [(NOW - 30, "0.02"), (NOW - 15, "NaN"), (NOW, "0.20")]),
            ],
            "latency": [matrix({}, [(NOW, "0.3")])],
            "absent": [],
        },
    )
    source = PrometheusSource(
        url,
        {"errors": "error_ratio", "p99": "latency", "nothing": "absent"},
        now=at_now,
    )
    series = await source.series(window_s=300, step_s=15)
    assert series == {
        "errors": [(NOW - 30, 0.02), (NOW, 0.20)],
        "p99": [(NOW, 0.3)],
        "nothing": [],
    }
    params = obs_http.requests_to("/api/v1/query_range")[0].params
    assert float(params["end"]) - float(params["start"]) == 300
    assert params["step"] == "15"


async def test_prometheus_error_body_is_permanent_with_its_message(
    obs_http: FakeHttpServer,
) -> None:
    url = serve_prometheus(obs_http, {"up": [matrix({}, [(NOW, "1")])]})
    source = PrometheusSource(url, {"ok": "up", "broken": "sum(rate(x[5m]"})
    with pytest.raises(PermanentError, match=r"bad_data: 1:1: parse error"):
        await source.series(300, 15)


async def test_prometheus_timeout_error_is_transient(obs_http: FakeHttpServer) -> None:
    obs_http.reply(
        "/api/v1/query",
        status=503,
        json_body={"status": "error", "errorType": "timeout", "error": "query timed out"},
    )
    with pytest.raises(TransientError, match="query timed out"):
        await PrometheusSource(obs_http.url, {}).instant("up")


async def test_prometheus_instant_vector_and_scalar(obs_http: FakeHttpServer) -> None:
    serve_prometheus(
        obs_http,
        {
            "up": [
                {"metric": {"job": "checkout", "instance": "a"}, "value": [NOW, "1"]},
                {"metric": {"job": "checkout", "instance": "b"}, "value": [NOW, "0"]},
            ]
        },
    )
    source = PrometheusSource(obs_http.url, {}, now=at_now)
    assert await source.instant("up") == [
        ({"job": "checkout", "instance": "a"}, 1.0),
        ({"job": "checkout", "instance": "b"}, 0.0),
    ]
    assert float(obs_http.requests_to("/api/v1/query")[0].params["time"]) == NOW
    obs_http.reply(
        "/api/v1/query",
        json_body={"status": "success", "data": {"resultType": "scalar", "result": [NOW, "42"]}},
    )
    assert await source.instant("scalar(42)") == [({}, 42.0)]


async def test_prometheus_malformed_answer_is_permanent(obs_http: FakeHttpServer) -> None:
    obs_http.reply(
        "/api/v1/query_range",
        json_body={"status": "success", "data": {"resultType": "matrix", "result": [{"x": 1}]}},
    )
    with pytest.raises(PermanentError, match="unexpected response shape"):
        await PrometheusSource(obs_http.url, {"e": "up"}).series(60, 15)


async def test_cloudwatch_metrics_series(obs_aws: str) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=obs_aws)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for minutes_ago, value in ((3, 10.0), (2, 20.0), (1, 90.0)):
        cloudwatch.put_metric_data(
            Namespace="AWS/ECS",
            MetricData=[
                {
                    "MetricName": "CPUUtilization",
                    "Dimensions": [{"Name": "ServiceName", "Value": "checkout"}],
                    "Timestamp": now.timestamp() - minutes_ago * 60,
                    "Value": value,
                }
            ],
        )
    source = CloudWatchMetricsSource(
        {
            "cpu": CloudWatchMetric("AWS/ECS", "CPUUtilization", {"ServiceName": "checkout"}),
            "cpu_max": ("AWS/ECS", "CPUUtilization", {"ServiceName": "checkout"}, "Maximum"),
            "other": CloudWatchMetric("AWS/ECS", "CPUUtilization", {"ServiceName": "cart"}),
        },
        "us-east-1",
        endpoint_url=obs_aws,
    )
    series = await source.series(window_s=900, step_s=15)
    assert [v for _, v in series["cpu"]] == [10.0, 20.0, 90.0]
    assert [v for _, v in series["cpu_max"]] == [10.0, 20.0, 90.0]
    assert series["cpu"][-1][0] == now.timestamp() - 60
    assert series["other"] == []


@pytest.mark.parametrize(
    ("status", "code", "error", "match"),
    [
        (400, "ThrottlingException", RateLimited, "Rate exceeded"),
        (503, "ServiceUnavailableException", TransientError, "Rate exceeded"),
        (400, "AccessDeniedException", PermanentError, "check the AWS credentials"),
    ],
)
async def test_aws_error_answers_are_translated(
    obs_http: FakeHttpServer,
    obs_aws: str,
    status: int,
    code: str,
    error: type[Exception],
    match: str,
) -> None:
    # CloudWatch Logs speaks AWS JSON 1.1: errors are a status plus {"__type", "message"}.
    obs_http.reply(
        "/",
        method="POST",
        status=status,
        json_body={"__type": code, "message": "Rate exceeded"},
        headers={"Content-Type": "application/x-amz-json-1.1"},
    )
    source = CloudWatchLogSource(
        "/ecs/checkout", "us-east-1", endpoint_url=obs_http.url, max_attempts=1
    )
    with pytest.raises(error, match=match):
        await source.tail(3)
    assert obs_http.seen[0].headers["x-amz-target"] == "Logs_20140328.FilterLogEvents"


# --- deploys


async def test_github_merges_deployments_prs_and_commits(obs_http: FakeHttpServer) -> None:
    now = time.time()
    minutes = 60.0
    url = serve_github(
        obs_http,
        "acme/checkout",
        token="ghp_test",
        commits=[
            gh_commit(
                "a" * 40, "Squash: bump pool size (#12)\n\nlong body", "ravi", now - 50 * minutes
            ),
            gh_commit("b" * 40, "fix typo", None, now - 20 * minutes),
            gh_commit("c" * 40, "ancient", "ravi", now - 500 * minutes),
        ],
        pulls=[
            gh_pull(12, "Bump pool size", "ravi", "a" * 40, now - 50 * minutes, now - 49 * minutes),
            gh_pull(11, "Abandoned", "lee", "d" * 40, None, now - 10 * minutes),
            gh_pull(9, "Old merge", "lee", "e" * 40, now - 400 * minutes, now - 30 * minutes),
        ],
        deployments=[
            gh_deployment("b" * 40, "production", "deploybot", now - 5 * minutes, "v1.4.2\nnotes"),
            gh_deployment("b" * 40, "staging", "deploybot", now - 15 * minutes),
            gh_deployment("9" * 40, "production", "deploybot", now - 600 * minutes),
        ],
    )
    source = GitHubDeploySource("acme/checkout", api_url=url, token="ghp_test")
    deploys = await source.recent(since_minutes=120)
    assert [(d.sha, d.kind, d.author, d.message) for d in deploys] == [
        ("bbbbbbb", "deployment", "deploybot", "production: v1.4.2"),
        ("aaaaaaa", "pull_request", "ravi", "Bump pool size (#12)"),
    ]
    assert deploys[0].minutes_ago == pytest.approx(5, abs=0.2)
    assert deploys[1].minutes_ago == pytest.approx(50, abs=0.2)
    commits_request = obs_http.requests_to("/repos/acme/checkout/commits")[0]
    assert commits_request.params["since"].endswith("Z")
    assert commits_request.headers["accept"] == "application/vnd.github+json"
    pulls_request = obs_http.requests_to("/repos/acme/checkout/pulls")[0]
    assert pulls_request.params["state"] == "closed"
    assert pulls_request.params["sort"] == "updated"


async def test_github_commit_without_linked_user_uses_git_name(obs_http: FakeHttpServer) -> None:
    url = serve_github(
        obs_http, "acme/checkout", commits=[gh_commit("f" * 40, "hotfix", None, time.time() - 60)]
    )
    [deploy] = await GitHubDeploySource("acme/checkout", api_url=url).recent(10)
    assert (deploy.sha, deploy.author, deploy.kind) == ("fffffff", "Unlinked Author", "commit")


async def test_github_bad_token_is_permanent(obs_http: FakeHttpServer) -> None:
    url = serve_github(obs_http, "acme/checkout", token="right")
    with pytest.raises(PermanentError, match="refused our credentials"):
        await GitHubDeploySource("acme/checkout", api_url=url, token="wrong").recent(60)


async def test_github_403_rate_limit_is_rate_limited(obs_http: FakeHttpServer) -> None:
    reset = int(time.time()) + 120
    for what in ("commits", "pulls", "deployments"):
        obs_http.reply(
            f"/repos/acme/checkout/{what}",
            status=403,
            json_body={"message": "API rate limit exceeded"},
            headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        )
    with pytest.raises(RateLimited) as caught:
        await GitHubDeploySource("acme/checkout", api_url=obs_http.url).recent(60)
    assert 100 < caught.value.retry_after <= 120


# --- errors


async def test_sentry_top_issues(obs_http: FakeHttpServer) -> None:
    now = time.time()
    url = serve_sentry(
        obs_http,
        "acme",
        "checkout",
        [
            sentry_issue("TimeoutError: upstream payments", 40, now - 90 * 60, "CHECKOUT-2"),
            sentry_issue("KeyError: 'cart_id'", 1200, now - 30 * 60, "CHECKOUT-7"),
            sentry_issue("ZeroDivisionError", 3, now - 10 * 60, "CHECKOUT-9"),
        ],
        token="sntrys_test",
    )
    source = SentryErrorSource("acme/checkout", api_url=url, token="sntrys_test")
    issues = await source.top_issues(2)
    assert [(i.title, i.count) for i in issues] == [
        ("KeyError: 'cart_id'", 1200),
        ("TimeoutError: upstream payments", 40),
    ]
    assert issues[0].first_seen_minutes_ago == pytest.approx(30, abs=0.2)
    assert issues[0].url == "https://sentry.example.com/organizations/acme/issues/CHECKOUT-7/"
    params = obs_http.requests_to("/api/0/projects/acme/checkout/issues/")[0].params
    assert params["query"] == "is:unresolved"
    assert params["statsPeriod"] == "24h"


async def test_sentry_bad_token_is_permanent(obs_http: FakeHttpServer) -> None:
    url = serve_sentry(obs_http, "acme", "checkout", [], token="right")
    with pytest.raises(PermanentError, match="401"):
        await SentryErrorSource("acme/checkout", api_url=url, token="wrong").top_issues(5)


async def test_sentry_malformed_count_is_permanent(obs_http: FakeHttpServer) -> None:
    obs_http.reply(
        "/api/0/projects/acme/checkout/issues/", json_body=[{"title": "x", "count": "many"}]
    )
    source = SentryErrorSource("acme/checkout", api_url=obs_http.url + "/api/0")
    with pytest.raises(PermanentError, match="unexpected response shape"):
        await source.top_issues(5)


def test_sentry_project_must_name_org() -> None:
    with pytest.raises(ValueError, match="org/project"):
        SentryErrorSource("checkout")


# --- health


async def test_health_ok_with_body_cut(obs_http: FakeHttpServer) -> None:
    obs_http.reply("/health", text="ok " * 400)
    result = await HttpHealthSource(obs_http.url + "/health").check()
    assert result.healthy
    assert result.status == 200
    assert len(result.body) == 500
    assert result.latency_ms is not None and result.latency_ms >= 0


async def test_health_unhealthy_answer_is_data(obs_http: FakeHttpServer) -> None:
    obs_http.reply("/health", status=503, json_body={"db": "down"})
    result = await HttpHealthSource(obs_http.url + "/health").check()
    assert (result.healthy, result.status, result.body) == (False, 503, '{"db":"down"}')


async def test_health_unreachable_is_data(refused_url: str) -> None:
    result = await HttpHealthSource(refused_url + "/health").check()
    assert result.status is None and not result.healthy
    assert "cannot reach" in result.body


async def test_health_timeout_is_data(silent_url: str) -> None:
    result = await HttpHealthSource(silent_url + "/health", timeout_s=0.2).check()
    assert result.status is None
    assert "no answer" in result.body
