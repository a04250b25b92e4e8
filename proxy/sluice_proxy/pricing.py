"""What a response cost: the shipped price table (``pricing/models.yaml``) or a backend override."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

import msgspec
import yaml

from .config.schema import Pricing
from .providers.base import Usage

# Suffixes that name a snapshot of a base model: -2024-08-06, -20241022, -002, -2411, -latest.
_SNAPSHOT = re.compile(
    r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{3}|-\d{4}|-latest|-preview(-[\w-]+)?|-exp(-[\w-]+)?)$"
)


@cache
def table() -> dict[str, Pricing]:
    """The shipped prices by model name, from every provider section."""
    data = yaml.safe_load(files("sluice_proxy").joinpath("pricing/models.yaml").read_text())
    return {
        model: msgspec.convert(price, Pricing)
        for section in data.values()
        for model, price in section.items()
    }


def base_model(model: str) -> str:
    """``gpt-4o-2024-08-06`` → ``gpt-4o``; ``models/gemini-1.5-pro-002`` → ``gemini-1.5-pro``."""
    name = model.rsplit("/", 1)[-1]
    while (stripped := _SNAPSHOT.sub("", name)) != name:
        name = stripped
    return name


def price_for(model: str, override: Pricing | None = None) -> Pricing | None:
    """The backend's ``pricing`` if set, else the table's entry for the model or its base name."""
    if override is not None:
        return override
    prices = table()
    name = model.rsplit("/", 1)[-1]
    return prices.get(name) or prices.get(base_model(name))


def cost_usd(usage: Usage, pricing: Pricing | None) -> float | None:
    """USD for ``usage``; None when the price is unknown (the caller counts it, never a silent 0)."""
    if pricing is None:
        return None
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    cached_price = pricing.input if pricing.cached_input is None else pricing.cached_input
    # input_tokens includes cached reads (OpenAI's prompt_tokens does), which are billed at their own rate.
    micro = (
        (usage.input_tokens - cached) * pricing.input
        + cached * cached_price
        + usage.output_tokens * pricing.output
    )
    return micro / 1_000_000
