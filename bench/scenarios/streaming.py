"""Scenario 3: 24-chunk SSE streams back to back on N connections; streams/s, TTFT, time to last byte."""

from __future__ import annotations

import statistics
from typing import Any

from ..harness import Bench, rounds, row
from ..report import Row

NAME = "stream"


def run(bench: Bench) -> list[Row]:
    turns, seconds = rounds(bench.settings.stream_seconds)
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for connections in bench.settings.stream_connections:
        for target in bench.targets:  # warm connection pools and code paths
            body = target.body(stream=True)
            bench.loadgen("streams", target, body, concurrency=connections, total=10_000_000, seconds=0.5)
        runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in bench.targets}
        for _ in range(turns):
            for target in bench.targets:
                runs[target.name].append(
                    bench.loadgen(
                        "streams", target, target.body(stream=True), concurrency=connections,
                        total=10_000_000, seconds=seconds,
                    )
                )  # fmt: skip
        results = {name: _combined(measured) for name, measured in runs.items()}
        for name, measured in runs.items():
            details[f"{name}@{connections}"] = {**results[name], "rounds": measured}
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


def _combined(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """One target's rounds as one: streams over time in all, percentiles the rounds' median."""
    completed = sum(m["completed"] for m in measured)
    elapsed = sum(m["elapsed_s"] for m in measured)
    errors: dict[str, int] = {}
    for m in measured:
        for kind, count in m["errors"].items():
            errors[kind] = errors.get(kind, 0) + count

    def median(series: str) -> dict[str, float]:
        return {
            p: statistics.median(m[series][p] for m in measured)
            for p in ("p50", "p99")
            if all(p in m[series] for m in measured)
        }

    return {
        "completed": completed,
        "elapsed_s": elapsed,
        "per_second": completed / elapsed if elapsed else 0.0,
        "errors": errors,
        "ttft_ms": median("ttft_ms"),
        "ttlb_ms": median("ttlb_ms"),
    }
