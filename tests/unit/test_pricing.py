"""The shipped price table, snapshot-name matching, overrides and cost arithmetic."""

from __future__ import annotations

import pytest

from sluice_proxy.config.schema import Pricing
from sluice_proxy.pricing import base_model, cost_usd, price_for, table
from sluice_proxy.providers.base import Usage


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("models/gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("mistral-large-2411", "mistral-large"),
        ("mistral-large-latest", "mistral-large"),
        ("o3-mini", "o3-mini"),
    ],
)
def test_snapshot_names_price_as_their_base(model: str, base: str) -> None:
    assert base_model(model) == base
    assert price_for(model) == table()[base]


def test_common_models_are_priced() -> None:
    for model in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o1",
        "o3",
        "o4-mini",
        "claude-opus-4",
        "gemini-2.5-pro",
    ):
        assert price_for(model) is not None, model


def test_a_mini_model_is_not_priced_as_its_larger_sibling() -> None:
    assert price_for("gpt-4o-mini") != price_for("gpt-4o")


def test_unknown_models_have_no_price_rather_than_zero() -> None:
    assert price_for("my-finetune-v7") is None
    assert cost_usd(Usage(input_tokens=10, output_tokens=10), None) is None


def test_a_backend_override_wins() -> None:
    override = Pricing(input=1.0, output=2.0)
    assert price_for("gpt-4o", override) is override
    assert price_for("my-finetune-v7", override) is override


def test_cost_bills_cached_input_at_its_own_rate() -> None:
    price = price_for("gpt-4o")
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=400_000)
    # 600k uncached × $2.50 + 400k cached × $1.25 + 100k output × $10.00, per million
    assert cost_usd(usage, price) == pytest.approx(1.5 + 0.5 + 1.0)


def test_cached_input_defaults_to_the_input_price() -> None:
    usage = Usage(input_tokens=2_000_000, cached_input_tokens=1_000_000)
    assert cost_usd(usage, Pricing(input=3.0, output=0.0)) == pytest.approx(6.0)
