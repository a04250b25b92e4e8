"""Scenario 4: thousands of concurrent slow streams; memory per stream, CPU per chunk, loop lag, errors.

Loop lag is seen from outside: a /healthz probe every 20 ms on its own connection while the
streams run; its latency is the time the server's event loop took to get to it.
"""

from __future__ import annotations

from typing import Any

from ..harness import Bench, Prober, Sampler, row
from ..machine import listen_overflows
from ..report import Row

NAME = "long"
KIB = 1024
GRACE = 120.0
"""How long past the ramp streams may take: a saturated server stretches 5 s streams a lot."""


def run(bench: Bench) -> list[Row]:
    s = bench.settings
    streams, ramp = s.long_streams, min(1.0, s.long_seconds / 4)
    measured: dict[str, dict[str, Any]] = {}
    for target in bench.targets:
        service = target.service
        with Prober(target.port).running() as idle_probe:
            bench.loadgen("sequential", target, target.body(stream=False), total=25, seconds=5)
        idle_rss = service.rss_bytes()
        overflows = listen_overflows()
        with Sampler(service).running() as sampler, Prober(target.port).running() as probe:
            result = bench.loadgen(
                "streams", target, target.body(stream=True, long=True), long=True,
                concurrency=streams, total=streams, seconds=ramp + GRACE, ramp=ramp, grace=GRACE,
            )  # fmt: skip
        chunks = result["completed"] * s.long_chunks
        # Machine-wide, but during this scenario nearly always the target's accept queue.
        overflows = listen_overflows() - overflows
        measured[target.name] = {
            **result,
            "idle_rss_bytes": idle_rss,
            "peak_rss_bytes": sampler.peak_rss,
            "rss_per_stream_kib": (sampler.peak_rss - idle_rss) / streams / KIB,
            "cpu_seconds": sampler.cpu_seconds,
            "cpu_us_per_chunk": sampler.cpu_seconds / chunks * 1e6 if chunks else None,
            "probe_idle_ms": idle_probe.summary(),
            "probe_ms": probe.summary(),
            "probe_failures": probe.failures,
            "listen_overflows": overflows,
        }
    bench.details[NAME] = measured

    def pick(*path: str) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        for name, data in measured.items():
            value: Any = data
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            values[name] = value
        return values

    shape = f"{streams} streams × {s.long_chunks} chunks / {s.long_seconds:g} s"
    return [
        row(NAME, f"completed streams ({shape})", pick("completed")),
        row(
            NAME, "errors", {n: sum(d["errors"].values()) + d["probe_failures"] for n, d in measured.items()}
        ),
        row(NAME, "kernel listen-queue overflows", pick("listen_overflows")),
        row(NAME, "RSS per in-flight stream (KiB)", pick("rss_per_stream_kib"), added=True),
        row(
            NAME,
            "peak RSS (MiB)",
            {n: d["peak_rss_bytes"] / KIB / KIB for n, d in measured.items()},
            added=True,
        ),
        row(NAME, "CPU per chunk (µs)", pick("cpu_us_per_chunk"), added=True),
        row(NAME, "healthz probe p50 under load (ms)", pick("probe_ms", "p50"), added=True),
        row(NAME, "healthz probe p99 under load (ms)", pick("probe_ms", "p99"), added=True, note="loop lag"),
        row(NAME, "TTFT p99 (ms)", pick("ttft_ms", "p99"), added=True),
        row(NAME, "last byte p99 (ms)", pick("ttlb_ms", "p99"), added=True),
    ]
