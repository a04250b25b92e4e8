"""What the limiter adds per request: admit + settle latency on a real local Redis vs in-process.

    .venv/bin/python bench/limiter_bench.py [--requests 5000] [--concurrency 100]

Starts its own `redis-server` on a free loopback port. The tenant has request, token and
concurrency limits and a budget (the most work one decision can do), set high enough that
nothing is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import tempfile
import time

import redis

from sluice_proxy.config import decode
from sluice_proxy.config.schema import RedisSettings
from sluice_proxy.limits import Limiter
from sluice_proxy.providers.base import Usage
from sluice_proxy.runtime import RuntimeRoute, RuntimeTenant, compile_config

LIMITS = {"requestsPerMinute": 10**9, "tokensPerMinute": 10**12, "concurrency": 10**6}


def runtime() -> tuple[RuntimeTenant, RuntimeRoute]:
    config = decode(
        {
            "providers": [{"name": "mock", "type": "mock"}],
            "routes": [{"model": "m", "backends": [{"provider": "mock", "model": "m"}]}],
            "tenants": [
                {
                    "name": "bench",
                    "keys": [{"value": "sk-bench-key"}],
                    "limits": LIMITS,
                    "budget": {"usd": 10**9},
                }
            ],
        }
    )
    compiled = compile_config(config)
    return next(iter(compiled.tenants_by_key_hash.values())), compiled.routes["m"]


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def sequential(limiter: Limiter, requests: int) -> tuple[list[float], list[float]]:
    tenant, route = runtime()
    admits, settles = [], []
    for _ in range(requests):
        started = time.perf_counter()
        admission = await limiter.admit(tenant, route, estimated_tokens=20)
        admitted = time.perf_counter()
        await limiter.settle(admission, Usage(input_tokens=12, output_tokens=8), 0.0001)
        admits.append(admitted - started)
        settles.append(time.perf_counter() - admitted)
    return admits, settles


async def concurrent(limiter: Limiter, requests: int, concurrency: int) -> float:
    """Admissions per second with ``concurrency`` requests arriving together, wave after wave."""
    tenant, route = runtime()
    started = time.perf_counter()
    for _ in range(requests // concurrency):
        admissions = await asyncio.gather(
            *(limiter.admit(tenant, route, estimated_tokens=20) for _ in range(concurrency))
        )
        await asyncio.gather(*(limiter.settle(a, Usage(12, 8), 0.0001) for a in admissions))
    return (requests // concurrency * concurrency) / (time.perf_counter() - started)


def report(name: str, admits: list[float], settles: list[float], rate: float) -> None:
    us = 1e6
    print(
        f"{name:<11} admit p50 {statistics.median(admits) * us:6.0f}µs p99 {percentile(admits, 0.99) * us:6.0f}µs"
        f" | settle p50 {statistics.median(settles) * us:6.0f}µs p99 {percentile(settles, 0.99) * us:6.0f}µs"
        f" | concurrent {rate:8.0f} admit+settle/s"
    )


def redis_cpu_us(url: str) -> float:
    """Microseconds Redis spent running scripts so far (INFO commandstats), then reset."""
    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    client.config_resetstat()
    client.close()
    return sum(float(stats.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in ("evalsha", "eval"))


async def main(requests: int, concurrency: int, url: str) -> None:
    for name, settings in (("in-process", None), ("redis", RedisSettings(url=url, timeout="1s"))):
        limiter = await Limiter.start(settings)
        await sequential(limiter, 200)  # warm up: connections, script load
        redis_cpu_us(url)
        admits, settles = await sequential(limiter, requests)
        rate = await concurrent(limiter, requests, concurrency)
        report(name, admits, settles, rate)
        if settings is not None:
            per_request = redis_cpu_us(url) / (2 * requests)
            print(f"{'':<11} redis CPU in scripts: {per_request:5.1f}µs per admit+settle")
        assert not limiter.degraded, "Redis timed out during the run"
        await limiter.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", directory],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            try:
                import uvloop

                uvloop.install()
            except ImportError:
                pass
            asyncio.run(main(args.requests, args.concurrency, f"redis://127.0.0.1:{port}/0"))
        finally:
            server.terminate()
            server.wait()
