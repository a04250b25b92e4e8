"""What every scenario uses: the settings of a run, client-side load, and samplers of a server."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import wrk
from .loadgen import percentiles
from .processes import Service, python
from .report import Row
from .stack import Stack, Target
from .wire import connect, render_get, timed_exchange


@dataclass(frozen=True)
class Settings:
    """Sizes and durations; ``quick`` shrinks all of them so a full pass takes well under a minute."""

    quick: bool
    sequential_requests: int
    wrk_seconds: float
    connections: tuple[int, ...]
    stream_seconds: float
    stream_connections: tuple[int, ...]
    long_streams: int
    long_chunks: int
    long_seconds: float
    scale_routes: int
    scale_tenants: int
    reloads: int
    large_bytes: int
    large_requests: int

    @classmethod
    def of(cls, quick: bool) -> Settings:
        if quick:
            return cls(True, 300, 2, (16, 64, 256), 2, (16, 64), 300, 20, 2, 200, 1000, 1, 1 << 20, 15)
        return cls(False, 3000, 8, (16, 64, 256), 6, (16, 64), 2000, 100, 5, 2000, 10_000, 3, 1 << 20, 100)


@dataclass
class Bench:
    stack: Stack
    settings: Settings
    details: dict[str, Any] = field(default_factory=dict)
    _bodies: dict[bytes, Path] = field(default_factory=dict)

    @property
    def targets(self) -> list[Target]:
        return list(self.stack.targets.values())

    def body_file(self, body: bytes) -> Path:
        """The body written once to a file (wrk and the load generator read bodies from files)."""
        if body not in self._bodies:
            path = self.stack.workdir / f"body-{len(self._bodies)}.json"
            path.write_bytes(body)
            self._bodies[body] = path
        return self._bodies[body]

    def wrk(
        self, target: Target, body: bytes, connections: int, seconds: float, long: bool = False
    ) -> wrk.WrkResult:
        return wrk.run(
            target.port,
            target.path(long=long),
            self.body_file(body),
            token=target.token,
            connections=connections,
            seconds=seconds,
            cpus=self.stack.layout.client,
        )

    def loadgen(
        self, mode: str, target: Target, body: bytes, *, long: bool = False, **options: float
    ) -> dict[str, Any]:
        """Run ``python -m bench.loadgen`` pinned to the load generator's cores; its JSON summary."""
        layout = self.stack.layout
        pin = ["taskset", "-c", ",".join(map(str, layout.client))] if layout.client else []
        argv = [
            *pin, python(), "-m", "bench.loadgen", mode, "--port", str(target.port),
            "--path", target.path(long=long), "--body-file", str(self.body_file(body)),
        ]  # fmt: skip
        if target.token:
            argv += ["--token", target.token]
        for name, value in options.items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        bound = sum(float(options.get(k, 30)) for k in ("seconds", "ramp", "grace")) + 60
        result = subprocess.run(argv, capture_output=True, timeout=bound, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"loadgen failed: {result.stderr.decode()[-2000:]}")
        summary: dict[str, Any] = orjson.loads(result.stdout)
        return summary


class Sampler:
    """Samples a service's RSS every ``interval`` s in a thread; CPU seconds at both ends."""

    def __init__(self, service: Service, interval: float = 0.05) -> None:
        self.service = service
        self.interval = interval
        self.peak_rss = 0
        self.cpu_start = 0.0
        self.cpu_seconds = 0.0
        self.wall_seconds = 0.0
        self._stop = threading.Event()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_rss = max(self.peak_rss, self.service.rss_bytes())

    @contextlib.contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self._loop, daemon=True)
        started = time.perf_counter()
        self.cpu_start = self.service.cpu_seconds()
        self.peak_rss = self.service.rss_bytes()
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.cpu_seconds = self.service.cpu_seconds() - self.cpu_start
            self.wall_seconds = time.perf_counter() - started

    @property
    def cpu_share(self) -> float:
        """CPU seconds per wall second (1.0 = one core busy)."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


class Prober:
    """GETs /healthz on one keep-alive connection every ``interval`` s: the event-loop lag seen from outside."""

    def __init__(self, port: int, interval: float = 0.02) -> None:
        self.port = port
        self.interval = interval
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()

    def _loop(self) -> None:
        request = render_get(self.port, "/healthz")
        with connect(self.port) as sock:
            sock.settimeout(30)
            while not self._stop.wait(self.interval):
                try:
                    latency, status = timed_exchange(sock, request)
                except OSError:
                    self.failures += 1
                    return
                if status == 200:
                    self.latencies.append(latency)
                else:
                    self.failures += 1

    @contextlib.contextmanager
    def running(self) -> Iterator[Prober]:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=60)

    def summary(self) -> dict[str, float]:
        return percentiles(self.latencies)


ROUND_SECONDS = 2
"""Targets measured against each other take turns in rounds this long (wrk takes whole
seconds), so a busy spell of a shared host falls on all of them rather than on whichever
target happened to be running."""


def rounds(seconds: float) -> tuple[int, float]:
    """How many turns ``seconds`` of measurement per target is split into, and their length."""
    count = max(1, round(seconds / ROUND_SECONDS))
    return count, seconds / count


def row(
    scenario: str, metric: str, values: Mapping[str, float | None], *, added: bool = False, note: str = ""
) -> Row:
    return Row(
        scenario,
        metric,
        direct=values.get("direct"),
        bare=values.get("bare"),
        sluice=values.get("sluice"),
        added=added,
        note=note,
    )


MB = 1024 * 1024
