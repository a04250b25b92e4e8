"""Where Sluice spends its CPU under the throughput load: py-spy samples, top functions by self time.

Needs ``py-spy`` in the venv (``.venv/bin/pip install py-spy``; not a project dependency) and
permission to ptrace the proxy. Prints the top of the profile after the table.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from ..harness import Bench, row
from ..report import Row

NAME = "profile"
CONNECTIONS = 64
TOP = 15


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def top_functions(raw: str, limit: int = TOP, within: str = "") -> tuple[int, list[tuple[str, float, float]]]:
    """Parse py-spy's raw (collapsed) output: (samples, [(function, self %, inclusive %)]).

    Ranked by self time; with ``within`` (a path fragment), only those functions, by inclusive time.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if not frame.startswith("process ")]
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return 0, []
    if within:
        ranked = [name for name, _ in inclusive.most_common() if within in name][:limit]
    else:
        ranked = [name for name, _ in own.most_common(limit)]
    return total, [(name, 100 * own[name] / total, 100 * inclusive[name] / total) for name in ranked]


def run(bench: Bench) -> list[Row]:
    py_spy = _py_spy()
    if py_spy is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    target = bench.stack.targets["sluice"]
    seconds = bench.settings.wrk_seconds
    output = bench.stack.workdir / "profile.txt"
    argv = [
        py_spy, "record", "--pid", str(target.service.pid), "--duration", f"{seconds:g}", "--rate", "250",
        "--format", "raw", "--nolineno", "--nonblocking", "--output", str(output),
    ]  # fmt: skip
    recorder: list[subprocess.CompletedProcess[str]] = []
    thread = threading.Thread(
        target=lambda: recorder.append(
            subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
        )
    )
    thread.start()
    result = bench.wrk(target, target.body(stream=False), CONNECTIONS, seconds)
    thread.join()
    if not output.exists():
        raise RuntimeError(f"py-spy failed: {recorder[0].stderr.strip() if recorder else 'no output'}")
    raw = output.read_text()
    samples, top = top_functions(raw)
    _, ours = top_functions(raw, within="sluice_proxy/")
    bench.details[NAME] = {
        "samples": samples,
        "requests_per_s_while_sampled": result.per_second,
        "top_self": [{"function": f, "self_pct": s, "inclusive_pct": i} for f, s, i in top],
        "top_sluice_inclusive": [{"function": f, "self_pct": s, "inclusive_pct": i} for f, s, i in ours],
    }
    lines = [f"py-spy, sluice under wrk -c{CONNECTIONS} ({samples} samples): self % | inclusive % | function"]
    lines += [f"  {s:5.1f} | {i:5.1f} | {f}" for f, s, i in top]
    # A coroutine resumed by the event loop has no Python caller frames, so inclusive
    # shares undercount callers above an ``await``; self shares are exact.
    lines += ["Sluice's own functions by inclusive time (undercounted above an await):"]
    lines += [f"  {s:5.1f} | {i:5.1f} | {f}" for f, s, i in ours]
    bench.details["profile_text"] = "\n".join(lines)
    return [row(NAME, f"requests/s while sampled, {CONNECTIONS} conns", {"sluice": result.per_second})]
