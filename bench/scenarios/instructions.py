"""Opt-in scenario: user-space instructions per request, counted by valgrind's cachegrind.

Requests/s and CPU time drift with whatever else a shared host runs; an instruction count
moves by about 1 % from run to run, so a change of a few percent shows where the throughput
rows cannot resolve it. Each of bare and Sluice runs twice under ``valgrind --tool=cachegrind
--cache-sim=no``, serving FEW and then MANY sequential requests on one connection; the
difference divided by the extra requests leaves start-up and shutdown out. It counts the
server's own process in user space only: not the kernel, not Redis, not cache misses (a
change that only warms the caches, or saves system calls, does not show here).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from ..harness import Bench, row
from ..processes import free_port, start
from ..report import Row
from ..stack import passthrough_argv

NAME = "instructions"
_I_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _valgrind() -> str:
    found = shutil.which("valgrind")
    if found is None:
        raise RuntimeError(
            "the instructions scenario needs valgrind (Debian/Ubuntu: apt-get install valgrind)"
        )
    return found


def _argv(bench: Bench, name: str, port: int) -> list[str]:
    stack = bench.stack
    if name == "sluice":
        return stack.sluice_argv(stack.workdir / "sluice.yaml", port)
    return passthrough_argv(port, stack.upstream.port)


def _count(bench: Bench, name: str, requests: int) -> int:
    """Instructions of one process's whole life, serving ``requests`` requests."""
    port = free_port()
    report = bench.stack.workdir / f"cachegrind-{name}-{requests}.txt"
    valgrind = [_valgrind(), "--tool=cachegrind", "--cache-sim=no",
                "--cachegrind-out-file=/dev/null", f"--log-file={report}"]  # fmt: skip
    service = start(
        f"{name}-cachegrind",
        [*valgrind, *_argv(bench, name, port)],
        port=port,
        cpus=bench.stack.layout.server,
        log=bench.stack.workdir / f"{name}-cachegrind.log",
        ready_path="/readyz" if name == "sluice" else "/healthz",
        timeout=300,  # Python starts about 50 times slower under valgrind
    )
    try:
        target = dataclasses.replace(bench.stack.targets[name], service=service)
        served = bench.loadgen(
            "sequential",
            target,
            target.body(stream=False),
            total=requests,
            seconds=600,
        )
        if served["completed"] != requests:
            raise RuntimeError(f"{name} under valgrind served {served['completed']} of {requests} requests")
    finally:
        service.stop(timeout=120)  # a clean exit writes the summary: as long as valgrind needs
    return read_instructions(report)


def read_instructions(report: Path) -> int:
    found = _I_REFS.search(report.read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"no instruction count in {report}")
    return int(found.group(1).replace(",", ""))


def run(bench: Bench) -> list[Row]:
    few, many = (50, 250) if bench.settings.quick else (200, 1200)
    per_request: dict[str, float] = {}
    for name in ("bare", "sluice"):
        per_request[name] = (_count(bench, name, many) - _count(bench, name, few)) / (many - few) / 1000
    bench.details[NAME] = {"requests": [few, many], "thousand_instructions_per_request": per_request}
    return [row(NAME, "user-space instructions per request, 1 connection (thousands)", per_request)]
