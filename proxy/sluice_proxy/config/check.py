"""Cross-field checks the schema alone cannot express.

Pure: takes a decoded :class:`SluiceConfig`, returns every problem found, each naming the
path of the offending field, what is wrong and how to fix it.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

import msgspec

from .redis_url import RedisAddress
from .schema import ProviderType, SecretRef, SluiceConfig

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with a configuration."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@functools.lru_cache(maxsize=256)  # a config has thousands of durations but only a few distinct ones
def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (``1m30s``, ``200ms``); the schema checked its shape."""
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def _check_secret(path: str, ref: SecretRef) -> list[Problem]:
    given = [name for name in ("env", "file", "value") if getattr(ref, name) is not None]
    if len(given) == 1:
        return []
    return [Problem(path, f"set exactly one of env, file, value (got {', '.join(given) or 'none'})")]


GATEWAY_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Headers the upstream client writes itself; a provider's ``headers`` may not set them."""
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _known(names: list[str]) -> str:
    return ", ".join(names) if names else "none defined"


def check(config: SluiceConfig) -> list[Problem]:
    """All cross-reference and consistency problems of ``config``; empty when it is valid."""
    problems: list[Problem] = []
    provider_names = [p.name for p in config.providers]
    providers = set(provider_names)
    for name, count in Counter(provider_names).items():
        if count > 1:
            problems.append(
                Problem("providers", f"provider name '{name}' is used {count} times; names must be unique")
            )
    for i, provider in enumerate(config.providers):
        path = f"providers[{i}]"
        if provider.api_key is not None:
            problems += _check_secret(f"{path}.apiKey", provider.api_key)
        if provider.type is ProviderType.AZURE_OPENAI:
            if not provider.base_url:
                problems.append(
                    Problem(
                        f"{path}.baseURL", "azure-openai needs baseURL (https://<resource>.openai.azure.com)"
                    )
                )
            if not provider.api_version:
                problems.append(
                    Problem(f"{path}.apiVersion", "azure-openai needs apiVersion, e.g. 2024-10-21")
                )
        for name, value in provider.headers.items():
            if name.lower() in GATEWAY_HEADERS:
                problems.append(
                    Problem(f"{path}.headers.{name}", "is set by the gateway itself; remove it from headers")
                )
            elif not _HEADER_NAME.match(name) or "\r" in value or "\n" in value:
                problems.append(
                    Problem(
                        f"{path}.headers.{name}", "header names are tokens and values have no line breaks"
                    )
                )
        if provider.base_url is not None and not re.match(r"^https?://", provider.base_url):
            problems.append(
                Problem(f"{path}.baseURL", f"'{provider.base_url}' must start with http:// or https://")
            )

    if config.redis is not None:
        try:
            RedisAddress.parse(config.redis.url)
        except ValueError as error:
            problems.append(Problem("redis.url", str(error)))
        if parse_duration(config.redis.timeout) <= 0:
            problems.append(
                Problem("redis.timeout", "must be greater than 0; every Redis call waits at most this long")
            )

    route_models = [r.model for r in config.routes]
    routed = set(route_models)  # tenants x routes membership tests: a list would be quadratic
    for model, count in Counter(route_models).items():
        if count > 1:
            problems.append(
                Problem("routes", f"model '{model}' is routed {count} times; each model needs one route")
            )
    for i, route in enumerate(config.routes):
        seen: set[tuple[str, str]] = set()
        for j, backend in enumerate(route.backends):
            if backend.provider not in providers:
                problems.append(
                    Problem(
                        f"routes[{i}].backends[{j}].provider",
                        f"unknown provider '{backend.provider}' (known: {_known(provider_names)})",
                    )
                )
            if (backend.provider, backend.model) in seen:
                problems.append(
                    Problem(
                        f"routes[{i}].backends[{j}]", f"duplicate backend {backend.provider}/{backend.model}"
                    )
                )
            seen.add((backend.provider, backend.model))
        if all(b.weight == 0 for b in route.backends):
            problems.append(Problem(f"routes[{i}].backends", "at least one backend needs a weight above 0"))
        if parse_duration(route.timeout) <= 0:
            problems.append(Problem(f"routes[{i}].timeout", "must be greater than 0"))

    tenant_names = [t.name for t in config.tenants]
    for name, count in Counter(tenant_names).items():
        if count > 1:
            problems.append(
                Problem("tenants", f"tenant name '{name}' is used {count} times; names must be unique")
            )
    key_owner: dict[str, str] = {}
    for i, tenant in enumerate(config.tenants):
        for j, key in enumerate(tenant.keys):
            if (key.sha256 is None) == (key.value is None):
                problems.append(Problem(f"tenants[{i}].keys[{j}]", "set exactly one of sha256, value"))
                continue
            digest = key.sha256 or key.value or ""
            owner = key_owner.setdefault(digest, tenant.name)
            if owner != tenant.name:
                problems.append(
                    Problem(f"tenants[{i}].keys[{j}]", f"the same key is already given to tenant '{owner}'")
                )
        limited: set[str] = set()
        for j, model_limits in enumerate(tenant.model_limits):
            if model_limits.model in limited:
                problems.append(
                    Problem(
                        f"tenants[{i}].modelLimits[{j}].model",
                        f"model '{model_limits.model}' has limits already; put them in one entry",
                    )
                )
            limited.add(model_limits.model)
        for j, allowed in enumerate(tenant.routes):
            if allowed != "*" and allowed not in routed:
                problems.append(
                    Problem(
                        f"tenants[{i}].routes[{j}]",
                        f"unknown route '{allowed}' (known: {_known(route_models)}, *)",
                    )
                )
    return problems
