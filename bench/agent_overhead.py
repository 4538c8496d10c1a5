"""Agent overhead per diagnosis, LLM time excluded, and tokens sent, over the shared scenarios.

The fake OpenAI server answers at once: one round of parallel tool calls, then a final answer.
Overhead = the pipeline's wall time minus the time spent inside provider calls.
Run: python -m bench.agent_overhead [--runs N] [--scenarios DIR]   (goal: p50 ≤ 50 ms)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from agent.eval import Scenario, load_scenario, scenario_context, scenario_sources
from agent.llm.base import Completion, Message
from agent.llm.chain import ProviderChain
from agent.llm.openai_provider import OpenAIProvider
from agent.pipeline import DiagnosisPipeline
from agent.types import DiagnosisSource
from tests.fakes.openai_server import FakeOpenAI, reply, tool_calls

DEFAULT_SCENARIOS = Path(__file__).resolve().parents[2] / "shared" / "scenarios"
TOOLS = ("logs", "metrics", "deploys", "errors", "health")


class TimedProvider:
    """Wraps a provider and adds up the time spent waiting for it."""

    def __init__(self, inner: OpenAIProvider) -> None:
        self.name = inner.name
        self.model = inner.model
        self._inner = inner
        self.waited_s = 0.0

    async def complete(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        json_mode: bool = False,
    ) -> Completion:
        started = time.perf_counter()
        try:
            return await self._inner.complete(messages, tools=tools, json_mode=json_mode)
        finally:
            self.waited_s += time.perf_counter() - started


def final_answer(scenario: Scenario) -> dict[str, Any]:
    logs = scenario.observations.logs or ["no logs"]
    return {
        "summary": scenario.title,
        "root_cause": scenario.title,
        "category": scenario.expect.category.value,
        "evidence": [{"tool": "logs", "quote": logs[-1][:80]}],
        "checks": ["check the dashboards"],
        "mitigation": "see root cause",
        "proposed_action": {"action": scenario.expect.action.value},
        "confidence": 0.8,
    }


async def measure(scenarios: list[Scenario], runs: int, fake: FakeOpenAI) -> dict[str, Any]:
    provider = TimedProvider(
        OpenAIProvider("bench", fake.base_url, "sk-bench", "fake-model", timeout_s=10)
    )
    pipeline = DiagnosisPipeline(ProviderChain([provider]), cache=None)
    overhead_ms: list[float] = []
    tokens: list[int] = []
    for _ in range(runs):
        for scenario in scenarios:
            ctx = scenario_context(scenario)
            sources = scenario_sources(scenario)
            present = [t for t in TOOLS if getattr(sources, t) is not None]
            fake.script(tool_calls(*((t, {}) for t in present)), reply(final_answer(scenario)))
            provider.waited_s = 0.0
            started = time.perf_counter()
            diagnosis = await pipeline.diagnose(ctx, sources)
            elapsed = time.perf_counter() - started
            if diagnosis.source is not DiagnosisSource.LIVE:
                raise RuntimeError(f"{scenario.id}: answered by {diagnosis.source}")
            overhead_ms.append((elapsed - provider.waited_s) * 1000)
            tokens.append(diagnosis.tokens.prompt)
    ordered = sorted(overhead_ms)
    return {
        "diagnoses": len(overhead_ms),
        "overhead_ms_p50": round(statistics.median(ordered), 2),
        "overhead_ms_p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "prompt_tokens_per_diagnosis_mean": round(statistics.fmean(tokens)),
        "prompt_tokens_per_diagnosis_max": max(tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_SCENARIOS)
    args = parser.parse_args()
    scenarios = [load_scenario(p) for p in sorted(args.scenarios.glob("*.json"))]
    fake = FakeOpenAI()
    fake.start()
    try:
        result = asyncio.run(measure(scenarios, args.runs, fake))
    finally:
        fake.stop()
    result["scenarios"] = len(scenarios)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
