"""Scenario replay (`opsbot eval`'s core) and evidence gathering from the sources."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.eval import (
    EvalReport,
    ScenarioError,
    evidence_recall,
    format_report,
    load_scenario,
    run_eval,
    scenario_context,
    scenario_sources,
)
from agent.gather import gather
from agent.sources import Sources
from agent.types import (
    ActionKind,
    Category,
    Diagnosis,
    DiagnosisSource,
    Evidence,
    IncidentContext,
    PastFix,
    TokenUsage,
)
from integrations.errors import TransientError
from integrations.observability.model import HealthResult, Point

SHARED_SCENARIOS = Path(__file__).resolve().parents[3] / "shared" / "scenarios"
HELD_OUT = Path(__file__).resolve().parents[1] / "scenarios_holdout"


def _points(*values: float) -> list[list[float]]:
    return [[1_772_000_000 + 60 * i, v] for i, v in enumerate(values)]


NODE_LEAK = {
    "id": "t-01-node-leak",
    "title": "image-resizer leaks buffers until V8 gives up",
    "source": "generic",
    "payload": {
        "incident_id": "inc-1",
        "service": "image-resizer",
        "alert_type": "process_crash",
        "severity": "critical",
        "message": "image-resizer exited with code 134",
        "logs": "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    },
    "observations": {
        "logs": [
            "(node:1) MaxListenersExceededWarning: Possible EventEmitter memory leak detected.",
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
        ],
        "metrics": {"memory_utilization_pct": _points(*range(52, 100, 4))},
        "deploys": [{"sha": "0a1b2c3", "message": "old", "author": "x", "minutes_ago": 9000}],
    },
    "expect": {
        "category": "memory_leak",
        "action": "restart",
        "evidence_keywords": ["JavaScript heap out of memory", "EventEmitter memory leak"],
    },
}

DISK = {
    "id": "t-02-disk",
    "title": "metrics-db volume full",
    "source": "alertmanager",
    "payload": {
        "version": "4",
        "groupKey": '{}:{alertname="KubePersistentVolumeFillingUp"}',
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "KubePersistentVolumeFillingUp", "service": "metrics-db"},
                "annotations": {"summary": "PersistentVolume is filling up."},
                "startsAt": "2026-03-01T00:00:00Z",
            }
        ],
    },
    "observations": {
        "logs": ['ERROR:  could not write to file "base/pgsql_tmp/t.0": No space left on device'],
        "metrics": {"disk_used_pct": _points(90, 91, 93, 95, 97, 99, 100, 100, 100)},
        "health": {"status": 503, "body": "db unavailable"},
    },
    # A deliberately wrong expected action, to see a miss scored as one.
    "expect": {
        "category": "disk_full",
        "action": "restart",
        "evidence_keywords": ["No space left on device", "disk_used_pct", "inode"],
    },
}

ALARM = {
    "AlarmName": "shop-api-RequestCount-high",
    "AlarmDescription": "shop-api request rate above plan",
    "NewStateValue": "ALARM",
    "NewStateReason": "Threshold Crossed",
    "StateChangeTime": "2026-03-01T00:00:00.000+0000",
    "Trigger": {"MetricName": "RequestCount", "Namespace": "AWS/ApplicationELB", "Dimensions": []},
}
SURGE = {
    "id": "t-03-surge",
    "title": "shop-api surge",
    "source": "sns",
    "payload": {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:alarms",
        "Subject": "ALARM: shop-api-RequestCount-high",
        "Message": json.dumps(ALARM),
        "Timestamp": "2026-03-01T00:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "c2ln",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
    },
    "observations": {
        "logs": ["2026-03-01T00:00:00Z desired count 14 exceeds MaxCapacity 10; capped at 10"],
        "metrics": {
            "requests_per_second": _points(200, 210, 205, 200, 900, 950, 980, 1000, 990),
            "http_error_ratio": _points(0.001, 0.001, 0.001, 0.002, 0.01, 0.01, 0.012, 0.011, 0.01),
        },
    },
    "expect": {
        "category": "traffic_spike",
        "action": "scale_up",
        "evidence_keywords": ["MaxCapacity", "requests_per_second"],
    },
}


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    for doc in (NODE_LEAK, DISK, SURGE):
        (tmp_path / f"{doc['id']}.json").write_text(json.dumps(doc))
    (tmp_path / "FORMAT.md").write_text("not a scenario")
    return tmp_path


async def test_run_eval_scores_every_scenario_with_the_offline_pipeline(scenario_dir: Path) -> None:
    report = await run_eval(scenario_dir)
    by_id = {r.id: r for r in report.results}
    assert list(by_id) == ["t-01-node-leak", "t-02-disk", "t-03-surge"]
    assert (by_id["t-01-node-leak"].category, by_id["t-01-node-leak"].action) == (
        "memory_leak",
        "restart",
    )
    assert by_id["t-02-disk"].category_ok and not by_id["t-02-disk"].action_ok
    assert by_id["t-02-disk"].action == "none"
    assert by_id["t-02-disk"].missing_keywords == ["inode"]
    assert by_id["t-03-surge"].category == "traffic_spike"
    assert report.scenarios == 3
    assert report.category_accuracy == 1.0
    assert report.action_accuracy == pytest.approx(2 / 3, abs=0.001)
    assert report.evidence_recall == pytest.approx((1 + 2 / 3 + 1) / 3, abs=0.001)
    assert all(r.source == "offline" for r in report.results)


async def test_the_report_serializes_to_the_contract_shape(scenario_dir: Path) -> None:
    doc = json.loads((await run_eval(scenario_dir)).model_dump_json())
    assert {
        "scenarios",
        "category_accuracy",
        "action_accuracy",
        "evidence_recall",
        "latency_ms_p50",
        "results",
    } <= set(doc)
    result = doc["results"][0]
    for key in (
        "id",
        "category",
        "action",
        "category_ok",
        "action_ok",
        "evidence_recall",
        "confidence",
        "source",
        "latency_ms",
    ):
        assert key in result
    assert EvalReport.model_validate(doc).scenarios == 3


async def test_format_report_is_a_table_with_misses_and_totals(scenario_dir: Path) -> None:
    text = format_report(await run_eval(scenario_dir))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["scenario", "category", "action"]
    assert any(line.startswith("t-02-disk") and "none (want restart)" in line for line in lines)
    assert "3 scenarios: category 100%, action 67%, evidence recall 89%" in text
    assert "t-02-disk: missing inode" in text


async def test_run_eval_uses_the_pipeline_it_is_given(scenario_dir: Path) -> None:
    seen: list[str | None] = []

    async def fixed(ctx: IncidentContext, sources: Sources) -> Diagnosis:
        seen.append(ctx.service)
        return Diagnosis(
            summary="x",
            root_cause="disk_used_pct says so",
            category=Category.DISK_FULL,
            evidence=[Evidence(tool="logs", quote="No space left on device")],
            confidence=0.5,
            source=DiagnosisSource.LIVE,
            tokens=TokenUsage(prompt=1200, completion=80),
        )

    report = await run_eval(scenario_dir, fixed)
    assert seen == ["image-resizer", "metrics-db", "shop-api"]
    # what a model costs is part of the report: tokens per answer and in all, answers by source
    assert (report.prompt_tokens, report.completion_tokens) == (3600, 240)
    assert report.sources == {"live": 3}
    assert "tokens 3600 prompt + 240 completion" in format_report(report)
    assert [r.category_ok for r in report.results] == [False, True, False]
    assert {r.source for r in report.results} == {"live"}


async def test_an_empty_or_broken_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"no \*\.json"):
        await run_eval(tmp_path)
    (tmp_path / "bad.json").write_text('{"id": "x"}')
    with pytest.raises(ScenarioError, match=r"bad\.json"):
        await run_eval(tmp_path)
    bad_alert = {"labels": {}, "startsAt": "yesterday"}
    unparsable = {**DISK, "payload": {"version": "4", "groupKey": "g", "alerts": [bad_alert]}}
    (tmp_path / "bad.json").write_text(json.dumps(unparsable))
    with pytest.raises(ScenarioError, match=r"bad\.json: payload: .*startsAt"):
        await run_eval(tmp_path)


def test_scenario_context_parses_each_source_and_allows_every_action(scenario_dir: Path) -> None:
    for name, service, title in (
        ("t-01-node-leak", "image-resizer", "image-resizer exited with code 134"),
        (
            "t-02-disk",
            "metrics-db",
            "KubePersistentVolumeFillingUp: PersistentVolume is filling up.",
        ),
        ("t-03-surge", "shop-api", "shop-api-RequestCount-high"),
    ):
        ctx = scenario_context(load_scenario(scenario_dir / f"{name}.json"))
        assert (ctx.service, ctx.title) == (service, title)
        assert ctx.allowed_actions == [ActionKind.RESTART, ActionKind.SCALE_UP, ActionKind.ROLLBACK]


async def test_scenario_sources_answer_like_real_sources(scenario_dir: Path) -> None:
    leak = scenario_sources(load_scenario(scenario_dir / "t-01-node-leak.json"))
    assert leak.logs is not None and leak.deploys is not None
    assert await leak.logs.tail(1) == [NODE_LEAK["observations"]["logs"][-1]]
    assert await leak.deploys.recent(60) == []
    assert len(await leak.deploys.recent(24 * 60 * 7)) == 1
    assert leak.health is None and leak.errors is None
    disk = scenario_sources(load_scenario(scenario_dir / "t-02-disk.json"))
    assert disk.health is not None
    assert (await disk.health.check()).status == 503


def test_evidence_recall_is_case_insensitive_over_summary_cause_and_quotes() -> None:
    d = Diagnosis(
        summary="orders: OOM",
        root_cause="the heap is full",
        category=Category.MEMORY_LEAK,
        evidence=[Evidence(tool="logs", quote="java.lang.OutOfMemoryError: Java heap space")],
        confidence=0.9,
    )
    assert evidence_recall(d, ["outofmemoryerror", "HEAP IS FULL", "Pause Full"]) == (
        pytest.approx(2 / 3),
        ["Pause Full"],
    )
    assert evidence_recall(d, []) == (1.0, [])


@pytest.mark.parametrize("folder", ["scenarios", "scenarios-k8s"])
async def test_the_offline_engine_meets_its_goals_on_the_shared_scenarios(folder: str) -> None:
    scenarios = SHARED_SCENARIOS.parent / folder
    if not scenarios.is_dir():
        pytest.skip(f"shared/{folder} not checked out")
    report = await run_eval(scenarios)
    assert report.category_accuracy >= 0.9
    assert report.action_accuracy >= 0.9
    assert report.evidence_recall >= 0.8


async def test_the_offline_engine_meets_its_goals_on_the_held_out_incidents() -> None:
    # tests/scenarios_holdout/README.md: public incidents the rules were not written from.
    report = await run_eval(HELD_OUT)
    assert report.scenarios >= 15
    assert report.category_accuracy >= 0.9
    assert report.action_accuracy >= 0.9
    assert report.evidence_recall >= 0.8


# ------------------------------------------------------------------------------ gather


class _Logs:
    async def tail(self, limit: int) -> list[str]:
        return ["app started", "ERROR boom"][-limit:]


class _DownMetrics:
    async def series(self, window_s: int, step_s: int) -> dict[str, list[Point]]:
        raise TransientError("connection refused")


class _HangingHealth:
    def __init__(self) -> None:
        self.never = asyncio.Event()

    async def check(self) -> HealthResult:
        await self.never.wait()
        return HealthResult(200, "never reached")


class _Past:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def fixes_for(self, signature: str) -> list[PastFix]:
        self.asked.append(signature)
        return [PastFix("restart", 3, 4)]


async def test_gather_notes_failed_and_silent_sources_and_keeps_the_rest(
    scenario_dir: Path,
) -> None:
    ctx = scenario_context(load_scenario(scenario_dir / "t-01-node-leak.json"))
    past = _Past()
    sources = Sources(logs=_Logs(), metrics=_DownMetrics(), health=_HangingHealth(), past=past)
    obs, notes = await gather(sources, ctx, timeout_s=0.05)
    assert notes == [
        "metrics: unavailable (connection refused)",
        "health: unavailable (no answer within 0.05s)",
    ]
    assert obs.logs == [
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
        "app started",
        "ERROR boom",
    ]
    assert obs.metrics == {} and obs.health is None
    assert obs.past_fixes == [PastFix("restart", 3, 4)]
    assert past.asked == [ctx.signature]


async def test_gather_with_no_sources_returns_only_the_alerts_logs(scenario_dir: Path) -> None:
    ctx = scenario_context(load_scenario(scenario_dir / "t-01-node-leak.json"))
    obs, notes = await gather(Sources(), ctx)
    assert notes == []
    assert obs.logs == list(ctx.alerts[0].logs)


async def test_gather_does_not_repeat_alert_lines_already_in_the_tail(scenario_dir: Path) -> None:
    s = load_scenario(scenario_dir / "t-01-node-leak.json")
    obs, _ = await gather(scenario_sources(s), scenario_context(s))
    assert obs.logs == s.observations.logs
