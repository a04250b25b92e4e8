"""Scenario 2: non-streaming throughput with wrk at several connection counts."""

from __future__ import annotations

import statistics
from typing import Any

from ..harness import Bench, Sampler, rounds, row
from ..report import Row
from ..wrk import WrkResult

NAME = "throughput"


def run(bench: Bench) -> list[Row]:
    turns, seconds = rounds(bench.settings.wrk_seconds)
    for target in bench.targets:  # warm connection pools and code paths
        bench.wrk(target, target.body(stream=False), 16, 1)
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for connections in bench.settings.connections:
        runs: dict[str, list[tuple[WrkResult, Sampler, Sampler]]] = {t.name: [] for t in bench.targets}
        for _ in range(turns):
            for target in bench.targets:
                # Redis serves every replica's limits: its CPU per request bounds the whole fleet.
                with (
                    Sampler(target.service).running() as server,
                    Sampler(bench.stack.redis).running() as redis,
                ):
                    result = bench.wrk(target, target.body(stream=False), connections, seconds)
                runs[target.name].append((result, server, redis))
        rps, p50, p99, errors, cpu, redis_cpu = {}, {}, {}, {}, {}, {}
        for name, measured in runs.items():
            results = [result for result, _, _ in measured]
            requests, elapsed = sum(r.requests for r in results), sum(r.seconds for r in results)
            rps[name] = requests / elapsed if elapsed else 0.0
            # wrk reports percentiles per run: the median of the rounds'.
            p50[name] = statistics.median(r.latency_ms["p50"] for r in results)
            p99[name] = statistics.median(r.latency_ms["p99"] for r in results)
            errors[name] = sum(r.error_count for r in results)
            busy, wall = (
                sum(s.cpu_seconds for _, s, _ in measured),
                sum(s.wall_seconds for _, s, _ in measured),
            )
            cpu[name] = busy / wall if wall else 0.0
            if name == "sluice" and bench.stack.limited and requests:
                redis_cpu[name] = sum(r.cpu_seconds for _, _, r in measured) / requests * 1e6
            details[f"{name}@{connections}"] = {
                "requests": requests, "seconds": elapsed, "server_cpu_cores": cpu[name],
                "server_peak_rss_bytes": max(s.peak_rss for _, s, _ in measured),
                "rounds": [
                    {"requests": r.requests, "seconds": r.seconds, "errors": r.errors, "latency_ms": r.latency_ms}
                    for r in results
                ],
            }  # fmt: skip
        label = f"{connections} conns"
        rows += [
            row(NAME, f"requests/s, {label}", rps),
            row(NAME, f"p50 latency, {label} (ms)", p50, added=True),
            row(NAME, f"p99 latency, {label} (ms)", p99, added=True),
            row(NAME, f"server CPU, {label} (cores)", cpu),
            *([row(NAME, f"Redis CPU per request, {label} (µs)", redis_cpu)] if redis_cpu else []),
            row(NAME, f"errors, {label}", errors),
        ]
    bench.details[NAME] = details
    return rows
