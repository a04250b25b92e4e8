"""The scenarios, in the order a full run takes them; each is ``run(bench) -> list[Row]``."""

from __future__ import annotations

from collections.abc import Callable

from ..harness import Bench
from ..report import Row
from . import (
    config_scale,
    footprint,
    instructions,
    large_prompts,
    long_streams,
    overhead,
    profile,
    streaming,
    throughput,
    workers,
)

Scenario = Callable[[Bench], list[Row]]

SCENARIOS: dict[str, Scenario] = {
    module.NAME: module.run
    for module in (
        overhead,
        throughput,
        streaming,
        long_streams,
        footprint,
        config_scale,
        large_prompts,
        workers,
        profile,
        instructions,
    )
}
OPT_IN = frozenset({instructions.NAME})
"""Run only when named in ``--only``: the instruction count runs under valgrind for about a minute."""
