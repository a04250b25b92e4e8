"""Client-side load for what wrk cannot measure: exact per-request latency, TTFT and time to last byte.

``sequential``: one keep-alive connection, one request at a time (blocking socket).
``streams``: ``--concurrency`` keep-alive connections on uvloop, each sending requests back to
back until ``--total`` requests or ``--seconds`` pass; with ``--ramp`` connections open evenly
over that many seconds. Prints one JSON object (see :func:`summarize`) on stdout.

Run: ``python -m bench.loadgen streams --port 9000 --path /v1/chat/completions --body-file b.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import orjson
import uvloop

from .wire import HOST, ResponseParser, connect, render_post, timed_exchange


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds (nearest-rank percentiles)."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] * 1000

    return {
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "max": ordered[-1] * 1000,
        "mean": statistics.fmean(ordered) * 1000,
    }


@dataclass
class Tally:
    ttft: list[float] = field(default_factory=list)
    ttlb: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    started: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def summarize(tally: Tally, elapsed: float) -> dict[str, object]:
    return {
        "completed": len(tally.ttlb),
        "errors": tally.errors,
        "elapsed_s": elapsed,
        "per_second": len(tally.ttlb) / elapsed if elapsed else 0.0,
        "ttft_ms": percentiles(tally.ttft),
        "ttlb_ms": percentiles(tally.ttlb),
    }


def run_sequential(port: int, request: bytes, total: int, seconds: float) -> dict[str, object]:
    tally = Tally()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    with connect(port) as sock:
        for _ in range(total):
            latency, status = timed_exchange(sock, request)
            if status == 200:
                tally.ttlb.append(latency)
            else:
                tally.error(f"http_{status}")
            if time.perf_counter() > deadline:
                break
    return summarize(tally, time.perf_counter() - started)


class _StreamClient(asyncio.Protocol):
    """One keep-alive connection sending requests back to back while the budget lasts."""

    def __init__(self, request: bytes, budget: _Budget, tally: Tally, finished: asyncio.Future[None]) -> None:
        self._request = request
        self._budget = budget
        self._tally = tally
        self._finished = finished
        self._transport: asyncio.Transport | None = None
        self._parser = ResponseParser()
        self._sent_at = 0.0
        self._first_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._next()

    def _next(self) -> None:
        assert self._transport is not None
        if not self._budget.take():
            self._transport.close()
            return
        self._parser = ResponseParser()
        self._first_at = 0.0
        self._sent_at = time.perf_counter()
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        now = time.perf_counter()
        if parser.got_body and not self._first_at:
            self._first_at = now
        if parser.done:
            if parser.status == 200:
                self._tally.ttft.append(self._first_at - self._sent_at)
                self._tally.ttlb.append(now - self._sent_at)
            else:
                self._tally.error(f"http_{parser.status}")
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._parser.status == 0 and self._sent_at and not self._parser.done:
            self._tally.error("disconnected")
        elif self._parser.status and not self._parser.done:
            self._tally.error("truncated")
        if not self._finished.done():
            self._finished.set_result(None)


class _Budget:
    def __init__(self, total: int, deadline: float) -> None:
        self.left = total
        self.deadline = deadline

    def take(self) -> bool:
        if self.left <= 0 or time.perf_counter() > self.deadline:
            return False
        self.left -= 1
        return True


async def run_streams(
    port: int, request: bytes, concurrency: int, total: int, seconds: float, ramp: float, grace: float
) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    tally = Tally()
    started = time.perf_counter()
    budget = _Budget(total, started + seconds)
    finished: list[asyncio.Future[None]] = []

    async def open_one(index: int) -> None:
        if ramp:
            await asyncio.sleep(ramp * index / concurrency)  # pacing the ramp, not synchronisation
        done: asyncio.Future[None] = loop.create_future()
        finished.append(done)
        try:
            await loop.create_connection(lambda: _StreamClient(request, budget, tally, done), HOST, port)
        except OSError as error:
            tally.error(f"connect_{type(error).__name__}")
            done.set_result(None)

    await asyncio.gather(*(open_one(i) for i in range(concurrency)))
    # Every connection closes itself once the budget is spent; ``grace`` bounds a stuck server.
    _, pending = await asyncio.wait(finished, timeout=seconds + ramp + grace)
    if pending:
        tally.errors["unfinished"] = len(pending)
    return summarize(tally, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("mode", choices=["sequential", "streams"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--token")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ramp", type=float, default=0.0)
    parser.add_argument(
        "--grace", type=float, default=30.0, help="seconds past --seconds to wait for open streams"
    )
    args = parser.parse_args()
    request = render_post(args.port, args.path, args.body_file.read_bytes(), args.token)
    if args.mode == "sequential":
        result = run_sequential(args.port, request, args.total, args.seconds)
    else:
        result = uvloop.run(
            run_streams(args.port, request, args.concurrency, args.total, args.seconds, args.ramp, args.grace)
        )
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
