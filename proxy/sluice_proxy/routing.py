"""Pure routing: which backends a request tries, in which order."""

from __future__ import annotations

import random
from collections.abc import Sequence

from .breaker import Breakers
from .runtime import RuntimeBackend, RuntimeRoute


def _weighted_order(tier: Sequence[RuntimeBackend], rng: random.Random | None) -> list[RuntimeBackend]:
    """A weighted random permutation (Efraimidis–Spirakis): heavier backends tend to go first."""
    if len(tier) == 1:
        return list(tier)
    draw = rng.random if rng is not None else random.random
    return sorted(tier, key=lambda b: draw() ** (1.0 / b.weight), reverse=True)


def plan(route: RuntimeRoute, breakers: Breakers, rng: random.Random | None = None) -> list[RuntimeBackend]:
    """Backends by priority, weighted within a priority; open circuits are left out."""
    ordered = [b for tier in route.tiers for b in _weighted_order(tier, rng)]
    return [b for b in ordered if breakers.allow(b.key)]
