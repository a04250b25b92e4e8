"""Scenario 1: one connection, one request at a time; what each hop adds to a request's latency."""

from __future__ import annotations

from ..harness import Bench, row
from ..report import Row

NAME = "overhead"


def run(bench: Bench) -> list[Row]:
    results = {}
    for target in bench.targets:
        body = target.body(stream=False)
        bench.loadgen(
            "sequential", target, body, total=min(200, bench.settings.sequential_requests), seconds=30
        )
        results[target.name] = bench.loadgen(
            "sequential", target, body, total=bench.settings.sequential_requests, seconds=60
        )
    bench.details[NAME] = results
    rows = [
        row(
            NAME,
            f"{p} latency, 1 connection (ms)",
            {t: r["ttlb_ms"].get(p) for t, r in results.items()},
            added=True,
        )
        for p in ("p50", "p90", "p99")
    ]
    rows.append(row(NAME, "errors", {t: sum(r["errors"].values()) for t, r in results.items()}))
    return rows
