"""Compile a validated :class:`SluiceConfig` into what the request path reads.

Done once per (re)load: secrets resolved, keys hashed, routes indexed, adapters bound.
A :class:`RuntimeConfig` is immutable, so a request keeps the snapshot it started with.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, Problem, Reuse, checksum, hash_key, parse_duration
from .config.schema import (
    DEFAULT_BASE_URLS,
    FallbackReason,
    Provider,
    Route,
    SecretRef,
    SluiceConfig,
    Tenant,
)
from .providers import ADAPTERS, Adapter, Target

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class RuntimeTenant:
    name: str
    spec: Tenant
    allowed_routes: frozenset[str]
    key_hashes: tuple[str, ...]

    def may_use(self, route_model: str) -> bool:
        return WILDCARD in self.allowed_routes or route_model in self.allowed_routes


@dataclass(frozen=True, slots=True)
class RuntimeBackend:
    target: Target
    adapter: Adapter
    priority: int
    weight: int
    key: str
    """``provider/model``: identifies the backend for the circuit breaker and logs (read several
    times per request, so built once here)."""


@dataclass(frozen=True, slots=True)
class RuntimeRoute:
    model: str
    spec: Route
    tiers: tuple[tuple[RuntimeBackend, ...], ...]
    """Backends grouped by priority, highest priority (lowest number) first."""
    timeout: float
    retry_attempts: int
    backoff: float
    fallback_on: frozenset[FallbackReason]


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    config: SluiceConfig
    checksum: str
    tenants_by_key_hash: dict[str, RuntimeTenant]
    routes: dict[str, RuntimeRoute]
    patterns: tuple[RuntimeRoute, ...]
    """Routes whose model is a glob (``claude-*``, ``*``), in configuration order."""
    secret_files: frozenset[Path]
    providers: dict[str, Target]
    """Each provider's target without a model: a route is recompiled when one of its providers changed."""

    def route_for(self, model: str) -> RuntimeRoute | None:
        route = self.routes.get(model)
        if route is not None:
            return route
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(model, pattern.model):
                return pattern
        return None


def _resolve(ref: SecretRef, path: str, problems: list[Problem], files: set[Path]) -> str | None:
    if ref.value is not None:
        return ref.value
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            problems.append(Problem(f"{path}.env", f"environment variable {ref.env} is not set"))
        return value
    if ref.file is not None:
        file = Path(ref.file)
        files.add(file)
        try:
            return file.read_text().strip()
        except OSError as exc:
            problems.append(Problem(f"{path}.file", f"cannot read {file}: {exc.strerror}"))
    return None


def _target_factory(
    provider: Provider, index: int, problems: list[Problem], files: set[Path]
) -> tuple[Adapter | None, Target]:
    api_key = (
        _resolve(provider.api_key, f"providers[{index}].apiKey", problems, files)
        if provider.api_key
        else None
    )
    adapter = ADAPTERS.get(provider.type)
    if adapter is None:
        problems.append(
            Problem(
                f"providers[{index}].type", f"provider type '{provider.type}' is not available in this build"
            )
        )
    base_url = provider.base_url or DEFAULT_BASE_URLS.get(provider.type, "")
    target = Target(
        provider=provider.name,
        type=provider.type,
        base_url=base_url.rstrip("/"),
        model="",
        api_key=api_key,
        api_version=provider.api_version,
        headers=dict(provider.headers),
    )
    return adapter, target


def _compile_route(route: Route, providers: dict[str, tuple[Adapter | None, Target]]) -> RuntimeRoute:
    backends = []
    for backend in route.backends:
        adapter, base = providers[backend.provider]
        assert adapter is not None  # unknown adapters were reported as problems first
        target = Target(
            provider=base.provider,
            type=base.type,
            base_url=base.base_url,
            model=backend.model,
            api_key=base.api_key,
            api_version=base.api_version,
            headers=base.headers,
            pricing=backend.pricing,
        )
        key = f"{target.provider}/{target.model}"
        backends.append(RuntimeBackend(target, adapter, backend.priority, backend.weight, key))
    priorities = sorted({b.priority for b in backends})
    tiers = tuple(tuple(b for b in backends if b.priority == p and b.weight > 0) for p in priorities)
    return RuntimeRoute(
        model=route.model,
        spec=route,
        tiers=tuple(tier for tier in tiers if tier),
        timeout=parse_duration(route.timeout),
        retry_attempts=route.retry.attempts,
        backoff=parse_duration(route.retry.backoff),
        fallback_on=frozenset(route.fallback_on),
    )


def compile_config(
    config: SluiceConfig, previous: RuntimeConfig | None = None, reuse: Reuse | None = None
) -> RuntimeConfig:
    """Everything the request path needs, indexed; ConfigError lists every problem.

    Tenants and routes whose spec is the very object ``previous`` was compiled from (``reuse``
    hands unchanged items back, see :class:`~sluice_proxy.config.codec.Reuse`) keep their
    compiled form, unless a provider of the route changed (its secret too).
    """
    problems: list[Problem] = []
    files: set[Path] = set()
    providers = {p.name: _target_factory(p, i, problems, files) for i, p in enumerate(config.providers)}
    compiled_tenants = _compiled_tenants(previous)
    tenants: dict[str, RuntimeTenant] = {}
    for tenant in config.tenants:
        runtime_tenant = compiled_tenants.get(id(tenant)) or _compile_tenant(tenant)
        for digest in runtime_tenant.key_hashes:
            tenants[digest] = runtime_tenant
    if problems:
        raise ConfigError(problems)
    compiled_routes = _compiled_routes(previous, providers)
    routes = [compiled_routes.get(id(route)) or _compile_route(route, providers) for route in config.routes]
    return RuntimeConfig(
        config=config,
        checksum=checksum(config, reuse),
        tenants_by_key_hash=tenants,
        routes={r.model: r for r in routes if not _is_pattern(r.model)},
        patterns=tuple(r for r in routes if _is_pattern(r.model)),
        secret_files=frozenset(files),
        providers={name: target for name, (_, target) in providers.items()},
    )


def _compile_tenant(tenant: Tenant) -> RuntimeTenant:
    hashes = tuple(key.sha256 or hash_key(key.value or "") for key in tenant.keys)
    return RuntimeTenant(tenant.name, tenant, frozenset(tenant.routes), hashes)


def _compiled_tenants(previous: RuntimeConfig | None) -> dict[int, RuntimeTenant]:
    """``previous``'s compiled tenants by the identity of their spec."""
    if previous is None:
        return {}
    return {id(tenant.spec): tenant for tenant in previous.tenants_by_key_hash.values()}


def _compiled_routes(
    previous: RuntimeConfig | None, providers: dict[str, tuple[Adapter | None, Target]]
) -> dict[int, RuntimeRoute]:
    """``previous``'s compiled routes by the identity of their spec, if none of their providers changed."""
    if previous is None:
        return {}
    unchanged = {name for name, (_, target) in providers.items() if previous.providers.get(name) == target}
    return {
        id(route.spec): route
        for route in (*previous.routes.values(), *previous.patterns)
        if all(backend.provider in unchanged for backend in route.spec.backends)
    }


def _is_pattern(model: str) -> bool:
    return any(c in model for c in "*?[")
