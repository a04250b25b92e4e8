"""Scenario 5: start-to-ready time, idle RSS and RSS under load, each on a freshly started process."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..harness import Bench, Sampler, row
from ..processes import Service, free_port, python, start
from ..report import Row
from ..stack import passthrough_argv

NAME = "footprint"
MIB = 1024 * 1024


def _fresh(bench: Bench, name: str) -> Service:
    stack = bench.stack
    if name == "sluice":
        return stack.start_sluice(stack.workdir / "sluice.yaml", name="sluice-fresh")
    port = free_port()
    if name == "direct":
        argv = [python(), "-m", "bench.upstream", "--port", str(port)]
        cpus = stack.layout.upstream
    else:
        argv = passthrough_argv(port, stack.upstream.port)
        cpus = stack.layout.server
    return start(f"{name}-fresh", argv, port=port, cpus=cpus, log=stack.workdir / f"{name}-fresh.log")


def run(bench: Bench) -> list[Row]:
    measured: dict[str, dict[str, Any]] = {}
    for target in bench.targets:
        service = _fresh(bench, target.name)
        try:
            fresh = dataclasses.replace(target, service=service)
            bench.loadgen("sequential", fresh, fresh.body(stream=False), total=200, seconds=30)
            idle = service.rss_bytes()
            with Sampler(service).running() as sampler:
                bench.wrk(fresh, fresh.body(stream=False), 64, bench.settings.wrk_seconds)
            measured[target.name] = {
                "ready_ms": service.ready_after * 1000,
                "idle_rss_mib": idle / MIB,
                "load_rss_mib": sampler.peak_rss / MIB,
            }
        finally:
            service.stop()
    bench.details[NAME] = measured
    return [
        row(NAME, "start to ready (ms)", {n: d["ready_ms"] for n, d in measured.items()}, added=True),
        row(NAME, "idle RSS (MiB)", {n: d["idle_rss_mib"] for n, d in measured.items()}, added=True),
        row(
            NAME,
            "RSS under load, 64 conns (MiB)",
            {n: d["load_rss_mib"] for n, d in measured.items()},
            added=True,
        ),
    ]
