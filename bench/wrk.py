"""Closed-loop HTTP load with wrk, pinned to the load generator's cores."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .wire import HOST

SCRIPT = Path(__file__).resolve().parent / "lua" / "post.lua"
MARK = "BENCH_JSON "


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run(
    port: int,
    path: str,
    body_file: Path,
    *,
    token: str | None,
    connections: int,
    seconds: float,
    cpus: Sequence[int],
) -> WrkResult:
    pin = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
    argv = [
        *pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "--latency",
        "-s", str(SCRIPT), f"http://{HOST}:{port}",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_PATH": path, "BENCH_TOKEN": token or ""}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(MARK)), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({result.returncode}): {result.stderr.strip() or result.stdout[-500:]}"
        )
    data: dict[str, Any] = orjson.loads(line[len(MARK) :])
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors={kind: count for kind, count in data["errors"].items() if count},
        latency_ms={name: value / 1000 for name, value in data["latency_us"].items()},
    )
