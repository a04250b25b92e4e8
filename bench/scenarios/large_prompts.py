"""Scenario 7: 1 MiB request bodies, one at a time; what each MiB costs on top of direct."""

from __future__ import annotations

from typing import Any

from ..harness import MB, Bench, row
from ..report import Row

NAME = "large"
WORDS = "The quick brown fox jumps over the lazy dog. "


def run(bench: Bench) -> list[Row]:
    size = bench.settings.large_bytes
    content = (WORDS * (size // len(WORDS) + 1))[:size]
    results: dict[str, dict[str, Any]] = {}
    for target in bench.targets:
        body = target.body(stream=False, content=content)
        bench.loadgen("sequential", target, body, total=3, seconds=30)
        results[target.name] = bench.loadgen(
            "sequential", target, body, total=bench.settings.large_requests, seconds=60
        )
    bench.details[NAME] = results
    megabytes = size / MB
    p50 = {t: r["ttlb_ms"].get("p50") for t, r in results.items()}
    direct = p50["direct"] or 0.0
    per_mb = {t: (v - direct) / megabytes if v is not None else None for t, v in p50.items()}
    return [
        row(NAME, f"p50 latency, {megabytes:g} MiB body (ms)", p50, added=True),
        row(NAME, f"p99 latency, {megabytes:g} MiB body (ms)", {t: r["ttlb_ms"].get("p99") for t, r in results.items()}, added=True),
        row(NAME, "added p50 per MiB over direct (ms/MiB)", per_mb),
        row(NAME, "errors", {t: sum(r["errors"].values()) for t, r in results.items()}),
    ]  # fmt: skip
