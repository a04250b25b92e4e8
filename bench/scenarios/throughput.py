"""Scenario 2: non-streaming throughput with wrk at several connection counts."""

from __future__ import annotations

from typing import Any

from ..harness import Bench, Sampler, row
from ..report import Row

NAME = "throughput"


def run(bench: Bench) -> list[Row]:
    seconds = bench.settings.wrk_seconds
    for target in bench.targets:  # warm connection pools and code paths
        bench.wrk(target, target.body(stream=False), 16, 1)
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for connections in bench.settings.connections:
        rps, p50, p99, errors, cpu, redis_cpu = {}, {}, {}, {}, {}, {}
        for target in bench.targets:
            # Redis serves every replica's limits: its CPU per request bounds the whole fleet.
            with Sampler(target.service).running() as sampler, Sampler(bench.stack.redis).running() as redis:
                result = bench.wrk(target, target.body(stream=False), connections, seconds)
            if target.name == "sluice" and bench.stack.limited and result.requests:
                redis_cpu[target.name] = redis.cpu_seconds / result.requests * 1e6
            rps[target.name] = result.per_second
            p50[target.name] = result.latency_ms["p50"]
            p99[target.name] = result.latency_ms["p99"]
            errors[target.name] = result.error_count
            cpu[target.name] = sampler.cpu_share
            details[f"{target.name}@{connections}"] = {
                "requests": result.requests, "seconds": result.seconds, "errors": result.errors,
                "latency_ms": result.latency_ms, "server_cpu_cores": sampler.cpu_share,
                "server_peak_rss_bytes": sampler.peak_rss,
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
