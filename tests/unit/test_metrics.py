"""Buffered metrics: what a scrape shows is what recording each figure directly would show."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import CollectorRegistry, Histogram

from sluice_proxy import metrics

_names = itertools.count()

# On bucket bounds, between them, below the first and past the last.
DURATIONS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 1.28, 81.92, 100.0, 0.01)


def respond(model: str, duration: float, cost_usd: float | None = 0.001) -> None:
    metrics.observe_response(
        operation="chat",
        provider_type="openai",
        provider="test",
        tenant="t",
        request_model=model,
        response_model=model,
        duration=duration,
        time_to_first_token=None,
        input_tokens=7,
        output_tokens=3,
        cached_input_tokens=0,
        cost_usd=cost_usd,
    )


def sample(name: str, model: str, **labels: str) -> float | None:
    genai = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": model,
        "gen_ai_response_model": model,
    }
    return metrics.REGISTRY.get_sample_value(name, {**genai, **labels})


def test_a_scrape_shows_the_buckets_sum_and_count_that_direct_observations_give() -> None:
    model = f"m{next(_names)}"
    reference = Histogram("reference", "", buckets=metrics._DURATION_BUCKETS, registry=CollectorRegistry())
    for duration in DURATIONS:
        respond(model, duration)
        reference.observe(duration)
    metrics.exposition()
    expected = {
        (s.name, s.labels.get("le")): s.value for family in reference.collect() for s in family.samples
    }
    name = "gen_ai_server_request_duration_seconds"
    for bound in [*metrics._DURATION_BUCKETS, float("inf")]:
        le = "+Inf" if bound == float("inf") else str(bound)
        assert sample(f"{name}_bucket", model, le=le) == expected["reference_bucket", le], le
    assert sample(f"{name}_count", model) == len(DURATIONS)
    assert sample(f"{name}_sum", model) == pytest.approx(expected["reference_sum", None])
    tokens = {"tenant": "t", "provider": "test", "model": model}
    assert metrics.REGISTRY.get_sample_value("sluice_tokens_total", {**tokens, "type": "input"}) == 7 * 10
    assert metrics.REGISTRY.get_sample_value("sluice_cost_usd_total", tokens) == pytest.approx(0.001 * 10)


def test_figures_are_written_once_however_often_it_is_scraped() -> None:
    model = f"m{next(_names)}"
    respond(model, 0.03)
    metrics.exposition()
    metrics.exposition()
    assert sample("gen_ai_server_request_duration_seconds_count", model) == 1
    respond(model, 0.03)
    respond(model, 0.05, cost_usd=None)
    metrics.exposition()
    assert sample("gen_ai_server_request_duration_seconds_count", model) == 3
    assert sample("gen_ai_server_request_duration_seconds_sum", model) == pytest.approx(0.03 + 0.03 + 0.05)
    unknown = {"provider": "test", "model": model}
    assert metrics.REGISTRY.get_sample_value("sluice_pricing_unknown_total", unknown) == 1


def test_requests_in_flight_and_counted_requests_reach_the_scrape() -> None:
    model = f"m{next(_names)}"
    before = metrics.REGISTRY.get_sample_value("sluice_inflight_requests") or 0.0
    metrics.inflight.add(1)
    metrics.inflight.add(1)
    metrics.inflight.add(-1)
    for status in (200, 200, 429):
        metrics.count_request("t", model, status)
    metrics.exposition()
    assert metrics.REGISTRY.get_sample_value("sluice_inflight_requests") == before + 1
    ok = {"tenant": "t", "model": model, "status": "200"}
    assert metrics.REGISTRY.get_sample_value("sluice_requests_total", ok) == 2
    metrics.inflight.add(-1)
    metrics.exposition()
    assert metrics.REGISTRY.get_sample_value("sluice_inflight_requests") == before
