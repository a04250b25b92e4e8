"""The processes of a run: mock upstream, redis, bare pass-through and Sluice, and the three targets.

A *target* is what a scenario sends load to: ``direct`` (the mock upstream itself),
``bare`` (the pass-through in front of it) and ``sluice`` (the real proxy in front of it).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import sluice_config
from .machine import Layout
from .processes import Service, free_port, http_get, python, start

TARGETS = ("direct", "bare", "sluice")
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class StreamShape:
    """The long-lived stream mode of the mock: ``chunks`` chunks spread over ``milliseconds``."""

    chunks: int
    milliseconds: int


@dataclass
class Target:
    name: str
    service: Service
    token: str | None
    model: str
    long_model: str
    long_path: str

    @property
    def port(self) -> int:
        return self.service.port

    def body(self, *, stream: bool, long: bool = False, content: str = "Say hello.") -> bytes:
        payload: dict[str, object] = {
            "model": self.long_model if long else self.model,
            "messages": [{"role": "user", "content": content}],
        }
        if stream:
            payload["stream"] = True
        return orjson.dumps(payload)

    def path(self, *, long: bool = False) -> str:
        return self.long_path if long else CHAT_PATH


@dataclass
class Stack:
    workdir: Path
    layout: Layout
    shape: StreamShape
    upstream: Service
    redis: Service
    limited: bool = True
    """Whether Sluice's config has Redis, limits and budgets (see sluice_config.render)."""
    targets: dict[str, Target] = field(default_factory=dict)

    def sluice_argv(self, config: Path, port: int, *options: str) -> list[str]:
        return [
            python(),
            "-m",
            "sluice_proxy",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *options,
        ]

    def start_sluice(
        self,
        config: Path,
        name: str = "sluice",
        timeout: float = 60.0,
        *,
        options: tuple[str, ...] = (),
        cpus: tuple[int, ...] | None = None,
    ) -> Service:
        """A Sluice process on a fresh port, ready once /readyz answers 200; ``cpus``: its pinning."""
        port = free_port()
        return start(
            name,
            self.sluice_argv(config, port, *options),
            port=port,
            cpus=self.layout.server if cpus is None else cpus,
            log=self.workdir / f"{name}-{port}.log",
            ready_path="/readyz",
            timeout=timeout,
        )

    def cpu_seconds(self) -> float:
        """CPU seconds of the long-running processes (the bench's own, not foreign load)."""
        services = {
            id(s): s for s in (self.upstream, self.redis, *(t.service for t in self.targets.values()))
        }
        return sum(service.cpu_seconds() for service in services.values())

    def render_config(self, *, routes: int = 0, tenants: int = 0) -> dict[str, Any]:
        return sluice_config.render(
            self.upstream.port,
            self.redis.port,
            self.shape.chunks,
            self.shape.milliseconds,
            routes=routes,
            tenants=tenants,
            limited=self.limited,
        )

    def write_config(self, path: Path, *, routes: int = 0, tenants: int = 0) -> Path:
        sluice_config.write(path, self.render_config(routes=routes, tenants=tenants))
        return path


def passthrough_argv(port: int, upstream_port: int) -> list[str]:
    """The bare pass-through on ``port`` in front of the mock upstream."""
    return [
        python(),
        "-m",
        "bench.passthrough",
        "--port",
        str(port),
        "--upstream",
        f"http://127.0.0.1:{upstream_port}",
    ]


def readyz_checksum(port: int) -> str | None:
    answer = http_get(port, "/readyz")
    if answer is None or answer[0] != 200:
        return None
    checksum = orjson.loads(answer[1]).get("config")
    return str(checksum) if checksum else None


def _start_redis(workdir: Path, layout: Layout) -> Service:
    port = free_port()
    argv = [
        shutil.which("redis-server") or "redis-server",
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(workdir),
    ]  # fmt: skip

    def ping() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        return False

    return start("redis", argv, port=port, cpus=layout.redis, log=workdir / "redis.log", ready=ping)


@contextlib.contextmanager
def running(workdir: Path, layout: Layout, shape: StreamShape, *, limited: bool = True) -> Iterator[Stack]:
    """Start everything, yield the stack, stop everything (also on failure)."""
    services: list[Service] = []
    try:
        upstream_port = free_port()
        upstream = start(
            "upstream",
            [python(), "-m", "bench.upstream", "--port", str(upstream_port)],
            port=upstream_port,
            cpus=layout.upstream,
            log=workdir / "upstream.log",
        )
        services.append(upstream)
        redis = _start_redis(workdir, layout)
        services.append(redis)
        stack = Stack(workdir, layout, shape, upstream, redis, limited)
        bare_port = free_port()
        bare = start(
            "bare",
            passthrough_argv(bare_port, upstream_port),
            port=bare_port,
            cpus=layout.server,
            log=workdir / "bare.log",
        )
        services.append(bare)
        sluice = stack.start_sluice(stack.write_config(workdir / "sluice.yaml"))
        services.append(sluice)
        long_path = f"/long/{shape.chunks}/{shape.milliseconds}{CHAT_PATH}"
        for name, service in (("direct", upstream), ("bare", bare)):
            stack.targets[name] = Target(name, service, None, "gpt-bench", "gpt-bench", long_path)
        stack.targets["sluice"] = Target(
            "sluice", sluice, sluice_config.TOKEN, sluice_config.MODEL, sluice_config.LONG_MODEL, CHAT_PATH
        )
        yield stack
    finally:
        for service in reversed(services):
            service.stop()


WATCHED_COUNTERS = (
    "sluice_redis_errors_total",
    "sluice_ratelimit_rejections_total",
    "sluice_upstream_errors_total",
    "sluice_pricing_unknown_total",
)


def scrape_counters(port: int) -> dict[str, float]:
    """Totals of the counters that must stay at zero in a bench run, from Sluice's /metrics."""
    answer = http_get(port, "/metrics", timeout=10)
    totals = dict.fromkeys(WATCHED_COUNTERS, 0.0)
    if answer is None:
        return totals
    for line in answer[1].decode().splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rpartition(" ")[2])
    return totals
