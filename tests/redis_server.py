"""A real `redis-server` on a free loopback port, which a test may kill and restart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sluice_proxy.limits.keys import SPEND_FIELD, Period, usage_key
from tests.proxy_process import free_port, wait_until


class RedisServer:
    """No persistence (``--save '' --appendonly no``): a restart starts empty, like a lost node."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--enable-debug-command", "local",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, timeout=10, message=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.process.returncode}")
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A synchronous client that does not retry: a timeout surfaces as redis.TimeoutError."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )

    def spend(self, tenant: str, period: Period, *, prefix: str = "sluice") -> int:
        """Micro-dollars ``tenant`` spent this day or month, read with redis-py (not the proxy's client)."""
        with self.client() as client:
            value = client.hget(usage_key(prefix, tenant, period, datetime.now(UTC)), SPEND_FIELD)
        return int(value or 0)  # type: ignore[arg-type]

    def script_calls(self) -> int:
        """EVALSHA calls since the last :meth:`reset_stats`: admissions, settlements and leases alike."""
        with self.client() as client:
            stats = client.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    def reset_stats(self) -> None:
        with self.client() as client:
            client.config_resetstat()

    def kill(self) -> None:
        """SIGKILL, as an outage; ``start`` brings it back on the same port."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory).start()
    yield server
    server.stop()
