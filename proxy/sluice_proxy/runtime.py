"""Compile a validated :class:`SluiceConfig` into what the request path reads.

Done once per (re)load: secrets resolved, keys hashed, routes indexed, adapters bound.
A :class:`RuntimeConfig` is immutable, so a request keeps the snapshot it started with.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, Problem, checksum, hash_key, parse_duration
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

    def may_use(self, route_model: str) -> bool:
        return WILDCARD in self.allowed_routes or route_model in self.allowed_routes


@dataclass(frozen=True, slots=True)
class RuntimeBackend:
    target: Target
    adapter: Adapter
    priority: int
    weight: int

    @property
    def key(self) -> str:
        """Identifies the backend for the circuit breaker and logs."""
        return f"{self.target.provider}/{self.target.model}"


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
        backends.append(RuntimeBackend(target, adapter, backend.priority, backend.weight))
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


def compile_config(config: SluiceConfig) -> RuntimeConfig:
    """Everything the request path needs, indexed; ConfigError lists every problem."""
    problems: list[Problem] = []
    files: set[Path] = set()
    providers = {p.name: _target_factory(p, i, problems, files) for i, p in enumerate(config.providers)}
    tenants: dict[str, RuntimeTenant] = {}
    for tenant in config.tenants:
        runtime_tenant = RuntimeTenant(tenant.name, tenant, frozenset(tenant.routes))
        for key in tenant.keys:
            digest = key.sha256 or hash_key(key.value or "")
            tenants[digest] = runtime_tenant
    if problems:
        raise ConfigError(problems)
    routes = [_compile_route(route, providers) for route in config.routes]
    return RuntimeConfig(
        config=config,
        checksum=checksum(config),
        tenants_by_key_hash=tenants,
        routes={r.model: r for r in routes if not _is_pattern(r.model)},
        patterns=tuple(r for r in routes if _is_pattern(r.model)),
        secret_files=frozenset(files),
    )


def _is_pattern(model: str) -> bool:
    return any(c in model for c in "*?[")
