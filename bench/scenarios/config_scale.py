"""Scenario 6: a config with thousands of routes and tenants; load time, reload time, latency meanwhile.

Reload is triggered the way the operator's ConfigMap update and ``kill -HUP`` do it: the file
is replaced atomically, then SIGHUP is sent; the reload is done when /readyz shows the new checksum.
Most reloads change one tenant (the operator republishes the namespace when one AITenant changes),
and one changes every tenant: the proxy reuses what did not change, so the two cost differently.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import threading
import time
from typing import Any

from .. import sluice_config
from ..harness import Bench, row
from ..loadgen import percentiles
from ..processes import wait_until
from ..report import Row
from ..stack import Target, readyz_checksum
from ..wire import connect, render_post, timed_exchange

NAME = "scale"
LOAD_TIMEOUT = 600.0


class _Traffic:
    """Sequential requests on one connection in a thread, each stamped with its start time."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        request = render_post(
            self.target.port, "/v1/chat/completions", self.target.body(stream=False), self.target.token
        )
        with connect(self.target.port) as sock:
            while not self._stop.is_set():
                started = time.perf_counter()
                latency, status = timed_exchange(sock, request)
                if status == 200:
                    self.samples.append((started, latency))
                else:
                    self.errors += 1

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=LOAD_TIMEOUT)

    def between(self, start: float, end: float) -> list[float]:
        return [latency for at, latency in self.samples if start <= at + latency and at <= end]


def _changed(port: int, old: str | None) -> bool:
    return readyz_checksum(port) not in (None, old)


def run(bench: Bench) -> list[Row]:
    s, stack = bench.settings, bench.stack
    config = stack.render_config(routes=s.scale_routes, tenants=s.scale_tenants)
    yaml_path = stack.workdir / "scale.yaml"
    sluice_config.write(yaml_path, config)
    small = stack.start_sluice(stack.workdir / "sluice.yaml", name="sluice-small")
    small_ready, small_rss = small.ready_after, small.rss_bytes()
    small.stop()
    yaml_service = stack.start_sluice(yaml_path, name="sluice-scale-yaml", timeout=LOAD_TIMEOUT)
    yaml_ready = yaml_service.ready_after
    yaml_service.stop()
    # Reloads are measured on JSON, the form the operator publishes large namespaces in.
    path = stack.workdir / "scale.json"
    sluice_config.write(path, config)
    service = stack.start_sluice(path, name="sluice-scale", timeout=LOAD_TIMEOUT)
    details: dict[str, Any] = {
        "routes": s.scale_routes,
        "tenants": s.scale_tenants,
        "bytes": path.stat().st_size,
    }
    try:
        target = dataclasses.replace(stack.targets["sluice"], service=service)
        steady = bench.loadgen("sequential", target, target.body(stream=False), total=500, seconds=30)
        reloads: list[float] = []
        during: list[float] = []
        during_all: list[float] = []
        before: list[float] = []
        for attempt in range(s.reloads + 1):
            old = readyz_checksum(service.port)
            # The last reload changes every tenant, the others one.
            changed = config["tenants"] if attempt == s.reloads else config["tenants"][:1]
            for tenant in changed:
                tenant["budget"]["usd"] = float(sluice_config.HUGE + attempt + 1)
            with _Traffic(target) as traffic:
                wait_until(lambda: len(traffic.samples) >= 50, 30, "traffic before the reload")
                sluice_config.write(path, config)
                started = time.perf_counter()
                service.process.send_signal(signal.SIGHUP)
                wait_until(
                    functools.partial(_changed, service.port, old), LOAD_TIMEOUT, "the new checksum", 0.01
                )
                finished = time.perf_counter()
            reloads.append(finished - started)
            before += traffic.between(0, started)
            (during_all if attempt == s.reloads else during).extend(traffic.between(started, finished))
            details.setdefault("traffic_errors", 0)
            details["traffic_errors"] += traffic.errors
        details |= {
            "small_ready_s": small_ready, "yaml_ready_s": yaml_ready, "scale_ready_s": service.ready_after,
            "reload_s": reloads[:-1], "reload_all_changed_s": reloads[-1],
            "steady": steady, "before_ms": percentiles(before), "during_ms": percentiles(during),
            "during_all_changed_ms": percentiles(during_all), "requests_during_reload": len(during) + len(during_all),
        }  # fmt: skip
        scale_rss = service.rss_bytes()
    finally:
        service.stop()
    bench.details[NAME] = details
    shape = f"{s.scale_routes} routes, {s.scale_tenants} tenants"
    return [
        row(NAME, "start to ready, bench config (s)", {"sluice": small_ready}),
        row(NAME, f"start to ready, {shape}, YAML (s)", {"sluice": yaml_ready}),
        row(NAME, f"start to ready, {shape}, JSON (s)", {"sluice": service.ready_after}),
        row(NAME, "reload via SIGHUP, JSON, one tenant changed, max (s)", {"sluice": max(reloads[:-1])}),
        row(NAME, "reload via SIGHUP, JSON, every tenant changed (s)", {"sluice": reloads[-1]}),
        row(NAME, "idle RSS, bench config → scale config (MiB)", {"sluice": (scale_rss - small_rss) / 2**20}, note="delta"),
        row(NAME, "p50 latency, scale config (ms)", {"sluice": steady["ttlb_ms"].get("p50")}),
        row(NAME, "p50 latency before reload (ms)", {"sluice": details["before_ms"].get("p50")}),
        row(NAME, "max latency before reload (ms)", {"sluice": details["before_ms"].get("max")}),
        row(NAME, "p50 latency during reload, one tenant changed (ms)", {"sluice": details["during_ms"].get("p50")}),
        row(NAME, "max latency during reload, one tenant changed (ms)", {"sluice": details["during_ms"].get("max")}),
        row(NAME, "p50 latency during reload, every tenant changed (ms)", {"sluice": details["during_all_changed_ms"].get("p50")}),
        row(NAME, "max latency during reload, every tenant changed (ms)", {"sluice": details["during_all_changed_ms"].get("max")}),
        row(NAME, "errors", {"sluice": details.get("traffic_errors", 0) + sum(steady["errors"].values())}),
    ]  # fmt: skip
