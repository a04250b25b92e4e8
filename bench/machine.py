"""The machine a run happened on, and which cores each process is pinned to."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Layout:
    """Core pinning. The server under test gets a core to itself whenever there are two."""

    client: tuple[int, ...]
    server: tuple[int, ...]
    upstream: tuple[int, ...]
    redis: tuple[int, ...]

    def describe(self) -> str:
        def cores(c: tuple[int, ...]) -> str:
            return ",".join(map(str, c)) if c else "any"

        return (
            f"load generator on core {cores(self.client)}, server under test on {cores(self.server)}, "
            f"mock upstream on {cores(self.upstream)}, redis on {cores(self.redis)}"
        )


def layout() -> Layout:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 4:
        return Layout((cpus[0],), (cpus[1],), (cpus[2],), (cpus[3],))
    if len(cpus) >= 2:
        # Two cores: the mock upstream and redis share the load generator's core, so the
        # server under test is the only process on its own core.
        return Layout((cpus[0],), (cpus[1],), (cpus[0],), (cpus[0],))
    return Layout((), (), (), ())


def _run(*argv: str) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=10, check=False)
    except OSError:
        return ""
    return (result.stdout or result.stderr).strip()


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def git_commit() -> tuple[str, str, bool]:
    """(full sha, short sha, whether the work tree has uncommitted changes)."""
    sha = _run("git", "rev-parse", "HEAD") or "unknown"
    short = _run("git", "rev-parse", "--short", "HEAD") or "unknown"
    dirty = bool(_run("git", "status", "--porcelain", "--untracked-files=no"))
    return sha, short, dirty


def describe(chosen: Layout) -> dict[str, object]:
    sha, short, dirty = git_commit()
    return {
        "commit": sha,
        "commit_short": short,
        "dirty": dirty,
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": _run("wrk", "--version").splitlines()[0] if _run("wrk", "--version") else "missing",
        "redis": _run("redis-server", "--version"),
        "layout": asdict(chosen),
        "layout_text": chosen.describe(),
    }


def system_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (all cores, idle excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds of this process and of its children that have exited (wrk, load generators)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def listen_overflows() -> int:
    """Connections the kernel dropped because a listen queue was full (TcpExt ListenOverflows)."""
    lines = [
        line.split()
        for line in Path("/proc/net/netstat").read_text().splitlines()
        if line.startswith("TcpExt:")
    ]
    if len(lines) < 2 or "ListenOverflows" not in lines[0]:
        return 0
    return int(lines[1][lines[0].index("ListenOverflows")])
