"""Scenario 3: 24-chunk SSE streams back to back on N connections; streams/s, TTFT, time to last byte."""

from __future__ import annotations

from typing import Any

from ..harness import Bench, row
from ..report import Row

NAME = "stream"


def run(bench: Bench) -> list[Row]:
    seconds = bench.settings.stream_seconds
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for connections in bench.settings.stream_connections:
        results = {}
        for target in bench.targets:
            body = target.body(stream=True)
            bench.loadgen("streams", target, body, concurrency=connections, total=10_000_000, seconds=0.5)
            results[target.name] = bench.loadgen(
                "streams", target, body, concurrency=connections, total=10_000_000, seconds=seconds
            )
            details[f"{target.name}@{connections}"] = results[target.name]
        label = f"{connections} conns"
        rows += [
            row(NAME, f"streams/s, {label}", {t: r["per_second"] for t, r in results.items()}),
            row(NAME, f"TTFT p50, {label} (ms)", {t: r["ttft_ms"].get("p50") for t, r in results.items()}, added=True),
            row(NAME, f"TTFT p99, {label} (ms)", {t: r["ttft_ms"].get("p99") for t, r in results.items()}, added=True),
            row(NAME, f"last byte p50, {label} (ms)", {t: r["ttlb_ms"].get("p50") for t, r in results.items()}, added=True),
            row(NAME, f"last byte p99, {label} (ms)", {t: r["ttlb_ms"].get("p99") for t, r in results.items()}, added=True),
            row(NAME, f"errors, {label}", {t: sum(r["errors"].values()) for t, r in results.items()}),
        ]  # fmt: skip
    bench.details[NAME] = details
    return rows
