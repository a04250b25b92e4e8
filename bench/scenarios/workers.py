"""Scenario 8: ``--workers 1`` and ``--workers 2``: what spreading Sluice over processes buys.

Three runs at 64 connections: one worker on the server core (as every other scenario),
two workers on that same core (the cost of being several processes: metrics in shared
files, two event loops), and two workers free to use every core. On a two-core machine the
last shares a core with the load generator, the mock upstream and Redis, so it shows what a
second core buys *there*, not a clean 2×. Limits stay exact (they live in Redis) and
/metrics is aggregated across the workers.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..harness import Bench, Sampler, row
from ..report import Row

NAME = "workers"
CONNECTIONS = 64


def run(bench: Bench) -> list[Row]:
    stack, seconds = bench.stack, bench.settings.wrk_seconds
    server, every_core = stack.layout.server, tuple(sorted(os.sched_getaffinity(0)))
    runs: list[tuple[str, int, tuple[int, ...]]] = [
        ("1 worker, server core", 1, server),
        ("2 workers, server core", 2, server),
    ]
    if every_core != server:
        runs.append(("2 workers, every core", 2, every_core))
    sluice = stack.targets["sluice"]
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for label, count, cpus in runs:
        service = stack.start_sluice(
            stack.workdir / "sluice.yaml",
            name=f"sluice-workers-{count}",
            options=("--workers", str(count)),
            cpus=cpus,
        )
        try:
            target = dataclasses.replace(sluice, service=service)
            bench.wrk(target, target.body(stream=False), 16, 1)  # warm the pools of every worker
            with Sampler(service).running() as sampler:
                result = bench.wrk(target, target.body(stream=False), CONNECTIONS, seconds)
        finally:
            service.stop()
        details[label] = {
            "workers": count, "cores": list(cpus), "requests_per_second": result.per_second,
            "requests": result.requests, "errors": result.errors, "latency_ms": result.latency_ms,
            "server_cpu_cores": sampler.cpu_share,
        }  # fmt: skip
        rows += [
            row(NAME, f"requests/s, {CONNECTIONS} conns, {label}", {"sluice": result.per_second}),
            row(NAME, f"server CPU, {label} (cores)", {"sluice": sampler.cpu_share}),
            row(NAME, f"errors, {label}", {"sluice": result.error_count}),
        ]
    bench.details[NAME] = details
    return rows
