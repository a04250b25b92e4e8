"""Pre-fork supervisor for ``--workers N``: one event loop per core.

Each worker binds the same port with SO_REUSEPORT, so the kernel spreads connections
across them. The master only supervises: it restarts a worker that dies, forwards
SIGHUP (reload) and SIGTERM/SIGINT (graceful stop), and lets Prometheus aggregate the
workers' metrics through a shared multiprocess directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from types import FrameType

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A worker that dies sooner than this after starting is restarted only after a pause,
# so a crash loop does not spin the CPU.
MIN_UPTIME = 1.0


_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def _current_pid() -> int:
    """This process's pid, refreshed at fork rather than asked of the kernel each time."""
    return _pid[0]


def prepare_metrics_dir() -> str:
    """Must run before prometheus_client is first imported: it reads the variable then."""
    directory = tempfile.mkdtemp(prefix="sluice-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    from prometheus_client import values

    # To notice a fork, each metric update asks for the process id: by default os.getpid(), a
    # system call, about ten per request. The pid kept up to date at fork answers the same.
    values.ValueClass = values.MultiProcessValue(process_identifier=_current_pid)  # type: ignore[no-untyped-call]
    return directory


def supervise(count: int, serve: Callable[[int], None]) -> int:
    """Fork ``count`` workers running ``serve(index)``; return when all have stopped."""
    from prometheus_client import multiprocess

    children: dict[int, tuple[int, float]] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            code = 0
            try:
                serve(index)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        children[pid] = (index, time.monotonic())

    def forward(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for index in range(count):
        spawn(index)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        child = children.pop(pid, None)
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        if child is None or stopping:
            continue
        index, started = child
        print(
            f"sluice-proxy: worker {index} (pid {pid}) exited with status {status}; restarting",
            file=sys.stderr,
            flush=True,
        )
        if time.monotonic() - started < MIN_UPTIME:
            time.sleep(MIN_UPTIME)
        spawn(index)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
    return 0
