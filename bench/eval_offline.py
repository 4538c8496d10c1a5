"""Score the offline diagnosis engine on a scenario folder and time it.

Usage: python bench/eval_offline.py [DIR] [--json]   (DIR defaults to ../shared/scenarios)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import offline
from agent.eval import (
    format_report,
    load_scenario,
    run_eval,
    scenario_context,
    scenario_sources,
)
from agent.gather import gather

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "scenarios"
REPEAT = 50


def _engine_ms(directory: Path) -> list[float]:
    """Per scenario, the median time of `offline.diagnose` alone (evidence already gathered)."""
    timings = []
    for path in sorted(directory.glob("*.json")):
        scenario = load_scenario(path)
        ctx = scenario_context(scenario)
        obs, _ = asyncio.run(gather(scenario_sources(scenario), ctx))
        runs = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            offline.diagnose(ctx, obs)
            runs.append((time.perf_counter() - started) * 1000)
        timings.append(statistics.median(runs))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = asyncio.run(run_eval(args.directory))
    if args.json:
        print(report.model_dump_json(indent=2))
        return
    print(format_report(report))
    engine = _engine_ms(args.directory)
    print(
        f"offline.diagnose alone: p50 {statistics.median(engine):.2f} ms, "
        f"max {max(engine):.2f} ms over {len(engine)} scenarios"
    )


if __name__ == "__main__":
    main()
