"""PrometheusSource against the real Prometheus binary scraping a tiny local exporter."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from integrations.errors import PermanentError
from integrations.observability.prometheus import PrometheusSource
from tests.fakes.observability_servers import free_port

PROMETHEUS = shutil.which("prometheus")
READY_DEADLINE_S = 20.0
POLL_INTERVAL_S = 0.2
DEPTHS = {"a": 42.0, "b": 7.0}

pytestmark = [
    pytest.mark.real_server,
    pytest.mark.skipif(
        PROMETHEUS is None, reason="the Debian `prometheus` binary is not installed"
    ),
]


@pytest.fixture(scope="module")
def exporter_port() -> Iterator[int]:
    registry = CollectorRegistry()
    depth = Gauge("opsbot_test_queue_depth", "Jobs waiting", ["worker"], registry=registry)
    for worker, value in DEPTHS.items():
        depth.labels(worker=worker).set(value)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def prometheus_url(exporter_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping the exporter every second, once it holds samples."""
    assert PROMETHEUS is not None
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_samples(url, process, workdir / "prometheus.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_for_samples(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            answer = httpx.get(
                f"{url}/api/v1/query", params={"query": "opsbot_test_queue_depth"}
            ).json()
            if len(answer["data"]["result"]) == len(DEPTHS):
                return
        except (httpx.TransportError, ValueError, KeyError):
            pass  # not listening or not ready yet
        time.sleep(POLL_INTERVAL_S)
    pytest.fail(f"no samples within {READY_DEADLINE_S}s: {log.read_text()[-2000:]}")


async def test_series_returns_the_exporters_values(prometheus_url: str) -> None:
    source = PrometheusSource(
        prometheus_url,
        {
            "depth": "opsbot_test_queue_depth",  # two series: the higher one is kept
            "total": "sum(opsbot_test_queue_depth)",
            "missing": "opsbot_no_such_metric",
        },
    )
    series = await source.series(window_s=30, step_s=1)
    assert series["depth"] and {v for _, v in series["depth"]} == {DEPTHS["a"]}
    assert series["total"] and {v for _, v in series["total"]} == {sum(DEPTHS.values())}
    assert series["missing"] == []
    timestamps = [t for t, _ in series["depth"]]
    assert timestamps == sorted(timestamps)
    assert time.time() - 35 < timestamps[0] <= timestamps[-1] <= time.time() + 1


async def test_instant_returns_labels_and_values(prometheus_url: str, exporter_port: int) -> None:
    source = PrometheusSource(prometheus_url, {})
    depths = await source.instant("opsbot_test_queue_depth")
    assert sorted((labels["worker"], value) for labels, value in depths) == sorted(DEPTHS.items())
    [(labels, up)] = await source.instant('up{job="exporter"}')
    assert (labels["instance"], up) == (f"127.0.0.1:{exporter_port}", 1.0)
    assert await source.instant("scalar(sum(opsbot_test_queue_depth))") == [({}, 49.0)]


async def test_invalid_promql_is_permanent_with_prometheus_message(prometheus_url: str) -> None:
    source = PrometheusSource(prometheus_url, {"broken": "sum(rate(opsbot_test_queue_depth[1m]"})
    with pytest.raises(PermanentError, match=r"bad_data.*parse error"):
        await source.series(60, 5)
