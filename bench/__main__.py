"""``python -m bench``: start the stack, run the scenarios, print one table, save it as JSON."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from sluice_proxy import build

from . import machine, report, stack
from .harness import Bench, Settings
from .scenarios import OPT_IN, SCENARIOS

TOOLS = ("wrk", "redis-server", "taskset")
NOISE_CORES = 0.1
"""CPU used by processes outside the bench above which a scenario's figures are flagged."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__)
    parser.add_argument(
        "--only",
        help=f"comma-separated scenarios to run (default: all but {','.join(sorted(OPT_IN))}): "
        f"{','.join(SCENARIOS)}",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and short durations (< 1 min)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the bench and every process it starts in a session of its own at this nice value; "
        "a negative one (root only) shields the figures from other work on a shared machine",
    )
    parser.add_argument(
        "--no-limits",
        action="store_true",
        help="Sluice without Redis, limits and budgets (pricing, metrics, logs stay): what the limiter costs",
    )
    parser.add_argument(
        "--interpreted",
        action="store_true",
        help="measure the proxy interpreted from the source tree, not compiled by mypyc as the image ships it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    return parser.parse_args()


def _prioritise(nice: int) -> None:
    """Run the bench in a session of its own at ``nice``: inherited by every process it starts.

    With scheduler autogroups (most Linux desktops and containers) nice only ranks processes
    within one session, so the bench first moves into its own session, then sets the nice
    value of that session's autogroup as well as its own.
    """
    if os.getsid(0) != os.getpid():
        os.execvp("setsid", ["setsid", "--wait", sys.executable, "-m", "bench", *sys.argv[1:]])
    autogroup = Path("/proc/self/autogroup")
    if autogroup.exists():
        autogroup.write_text(str(nice))
    os.setpriority(os.PRIO_PROCESS, 0, nice)


def _raise_open_files_limit() -> None:
    """Thousands of concurrent streams need as many sockets, in every process (children inherit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _counter_rows(scenario: str, before: dict[str, float], after: dict[str, float]) -> list[report.Row]:
    """Rows for Sluice counters that moved during a scenario (Redis errors, rejections …)."""
    return [
        report.Row(scenario, f"sluice {name}", sluice=after[name] - before[name])
        for name in stack.WATCHED_COUNTERS
        if after[name] != before[name]
    ]


def _run_scenario(name: str, bench: Bench, record: report.Record) -> bool:
    """Run one scenario into ``record``; False if it failed (the others still run)."""
    running = bench.stack
    started = time.perf_counter()
    print(f"bench: {name} …", file=sys.stderr, flush=True)
    counters = stack.scrape_counters(running.targets["sluice"].port)
    busy, ours = machine.system_busy_seconds(), machine.own_seconds() + running.cpu_seconds()
    ok = True
    try:
        record.rows += SCENARIOS[name](bench)
        record.rows += _counter_rows(name, counters, stack.scrape_counters(running.targets["sluice"].port))
    except Exception:  # one broken scenario must not lose the others' figures
        ok = False
        record.details.setdefault("failures", {})[name] = traceback.format_exc()
        traceback.print_exc()
    elapsed = time.perf_counter() - started
    # CPU that neither the bench nor the processes under test used: other work on the machine.
    foreign = machine.system_busy_seconds() - busy - (machine.own_seconds() + running.cpu_seconds() - ours)
    record.details.setdefault("foreign_cpu_cores", {})[name] = foreign / elapsed
    print(f"bench: {name} done in {elapsed:.1f} s; other processes used {foreign / elapsed:.2f} cores",
          file=sys.stderr, flush=True)  # fmt: skip
    return ok


def chosen_scenarios(only: str | None) -> list[str]:
    """The scenarios ``--only`` names, in its order; without it, all but the opt-in ones."""
    if not only:
        return [name for name in SCENARIOS if name not in OPT_IN]
    return [name.strip() for name in only.split(",")]


def main() -> int:
    args = parse_args()
    chosen = chosen_scenarios(args.only)
    if unknown := [name for name in chosen if name not in SCENARIOS]:
        print(
            f"--only: unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    if args.interpreted == build.COMPILED:
        print(
            "bench: the proxy on PYTHONPATH is "
            + ("compiled but --interpreted was given" if build.COMPILED else "interpreted")
            + "; run bench/run.sh, which builds the compiled one (or pass --interpreted to measure the source tree)",
            file=sys.stderr,
        )
        return 2
    if missing := [tool for tool in TOOLS if shutil.which(tool) is None]:
        print(
            f"missing {', '.join(missing)}: run bench/run.sh, or apt-get install wrk redis-server util-linux",
            file=sys.stderr,
        )
        return 2
    _raise_open_files_limit()
    if args.nice:
        _prioritise(args.nice)
    layout = machine.layout()
    if layout.client:
        os.sched_setaffinity(0, layout.client)
    settings = Settings.of(args.quick)
    record = report.Record(
        machine=machine.describe(layout),
        settings={
            **asdict(settings),
            "scenarios": chosen,
            "sluice_limits": not args.no_limits,
            "sluice_build": "compiled" if build.COMPILED else "interpreted",
            "nice": os.getpriority(os.PRIO_PROCESS, 0),
        },
    )
    workdir = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    print(f"bench: {layout.describe()}; work directory {workdir}", file=sys.stderr)
    failed: list[str] = []
    shape = stack.StreamShape(settings.long_chunks, int(settings.long_seconds * 1000))
    with stack.running(workdir, layout, shape, limited=not args.no_limits) as running:
        bench = Bench(running, settings, details=record.details)
        for name in chosen:
            if not _run_scenario(name, bench, record):
                failed.append(name)
    noisy = [
        f"{n} ({cores:.2f} cores)"
        for n, cores in record.details["foreign_cpu_cores"].items()
        if cores > NOISE_CORES
    ]
    m = record.machine
    print(f"\nSluice bench {m['commit_short']}{' (dirty)' if m['dirty'] else ''} · {m['nproc']} × {m['cpu_model']} · "
          f"Python {m['python']} · Sluice {record.settings['sluice_build']} · {'quick' if settings.quick else 'full'} · "
          f"{m['layout_text']}\n")  # fmt: skip
    print(report.table(record.rows))
    if "profile_text" in record.details:
        print("\n" + record.details["profile_text"])
    if noisy:
        print(f"NOISY: other processes used CPU during {', '.join(noisy)}; rerun on a quiet machine")
        record.details["noisy"] = noisy
    print(f"\nsaved {report.save(record)}")
    if failed:
        print(f"FAILED scenarios: {', '.join(failed)} (tracebacks in the JSON)", file=sys.stderr)
    if args.keep:
        print(f"work directory kept: {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
