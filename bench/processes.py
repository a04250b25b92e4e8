"""Processes under test: start pinned to cores, wait until ready, read RSS and CPU from /proc, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .wire import HOST, ResponseParser, render_get

T = TypeVar("T")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.005) -> T:
    """Poll ``condition`` until it returns a value; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """(status, body) of one GET on a fresh connection; None if nothing listens yet."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(render_get(port, path))
            parser = ResponseParser(keep_body=True)
            while not parser.done:
                data = sock.recv(65_536)
                if not data:
                    return None
                parser.feed(data)
            return parser.status, bytes(parser.body)
    except OSError:
        return None


def python() -> str:
    """The interpreter of the running venv, used for every Python process under test."""
    return sys.executable


@dataclass
class Service:
    """A process under test (the first of its pids is the one measured)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    started_at: float
    ready_after: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident set size of the process and its children (``--workers`` forks)."""
        return sum(_rss(pid) for pid in (self.pid, *_children(self.pid)))

    def cpu_seconds(self) -> float:
        return sum(_cpu(pid) for pid in (self.pid, *_children(self.pid)))

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, and SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    cpus: Sequence[int] | None,
    log: Path,
    ready_path: str | None = "/healthz",
    ready: Callable[[], object | None] | None = None,
    timeout: float = 30.0,
) -> Service:
    """Start ``argv`` pinned to ``cpus`` and wait until ``GET ready_path`` (or ``ready()``) answers."""
    pin = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
    with log.open("ab") as out:
        started = time.perf_counter()
        process = subprocess.Popen([*pin, *argv], stdout=out, stderr=subprocess.STDOUT)
    service = Service(name, port, process, started)

    def is_ready() -> object | None:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} during start-up; see {log}")
        if ready is not None:
            return ready()
        assert ready_path is not None
        answer = http_get(port, ready_path, timeout=1.0)
        return answer is not None and answer[0] == 200

    wait_until(is_ready, timeout, f"{name} to answer on port {port}", interval=0.002)
    service.ready_after = time.perf_counter() - started
    return service


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError):
        return 0


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of stat (utime, stime); index 11 and 12 after the ")" that ends the name.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
