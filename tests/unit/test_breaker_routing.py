"""The circuit breaker state machine and weighted, prioritised routing (pure, clock injected)."""

from __future__ import annotations

import random
from collections import Counter

from sluice_proxy import config, routing
from sluice_proxy.breaker import Breakers, State
from sluice_proxy.runtime import compile_config


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_then_half_opens_with_one_probe() -> None:
    clock = Clock()
    breakers = Breakers(threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        breakers.failure("b")
    assert breakers.state("b") is State.CLOSED
    breakers.failure("b")
    assert breakers.state("b") is State.OPEN and not breakers.allow("b")
    clock.now = 10
    assert breakers.state("b") is State.HALF_OPEN
    assert breakers.allow("b") and not breakers.allow("b"), "only one probe at a time"
    breakers.failure("b")
    assert breakers.state("b") is State.OPEN
    clock.now = 20
    assert breakers.allow("b")
    breakers.success("b")
    assert breakers.state("b") is State.CLOSED and breakers.allow("b")


def test_success_resets_the_failure_count() -> None:
    breakers = Breakers(threshold=2, clock=Clock())
    breakers.failure("b")
    breakers.success("b")
    breakers.failure("b")
    assert breakers.state("b") is State.CLOSED


ROUTE = """
providers: [{name: a, type: mock}, {name: b, type: mock}, {name: c, type: mock}]
routes:
  - model: m
    backends:
      - {provider: a, model: x, priority: 0, weight: 3}
      - {provider: b, model: x, priority: 0, weight: 1}
      - {provider: c, model: x, priority: 1}
"""


def test_priority_first_weight_within() -> None:
    route = compile_config(config.loads(ROUTE)).routes["m"]
    rng = random.Random(7)
    firsts = Counter(routing.plan(route, Breakers(), rng)[0].target.provider for _ in range(4000))
    assert set(firsts) == {"a", "b"}
    assert 0.70 < firsts["a"] / 4000 < 0.80  # weight 3:1
    assert all(routing.plan(route, Breakers(), rng)[-1].target.provider == "c" for _ in range(50))


def test_open_circuits_are_left_out_of_the_plan() -> None:
    route = compile_config(config.loads(ROUTE)).routes["m"]
    breakers = Breakers(threshold=1, clock=Clock())
    breakers.failure("a/x")
    assert [b.target.provider for b in routing.plan(route, breakers)] in (["b", "c"],)
