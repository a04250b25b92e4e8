"""PURE: one namespace's resources and Secret data → the proxy config, plus a verdict per resource.

A broken resource is left out and gets its own verdict; everything else keeps serving.
Tenant keys leave this module only as SHA-256 digests; provider keys go to the credentials
Secret and the config points at their mounted files. The result is validated with the
proxy's own decoder, so a config the proxy would reject is never returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sluice_proxy.config import (
    Provider,
    RedisSettings,
    Route,
    SecretRef,
    SluiceConfig,
    Tenant,
    TenantKey,
    check,
    decode,
    hash_key,
    to_builtins,
)

from .api import (
    CREDENTIALS_DIR,
    PROVIDERS,
    ROUTES,
    TENANTS,
    AITenantSpec,
    ProviderSecretSpec,
    SpecError,
    decode_spec,
)

ACCEPTED = "Accepted"
INVALID = "Invalid"
PROVIDER_NOT_FOUND = "ProviderNotFound"
SECRET_NOT_FOUND = "SecretNotFound"
KEY_MISSING = "KeyMissing"
ROUTE_NOT_FOUND = "RouteNotFound"


@dataclass(frozen=True, kw_only=True)
class Resource:
    """The parts of a custom resource the renderer reads."""

    plural: str
    name: str
    spec: Any
    created: str = ""
    """creationTimestamp: on a conflict (two AIRoutes for one model) the older wins."""


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    namespace: str
    resources: list[Resource]
    secrets: Mapping[str, Mapping[str, bytes]]
    """Secret name → decoded data, for the Secrets of this namespace."""
    redis_url: str | None = None
    quota_leases: bool = True
    """redis.quotaLeases of the rendered config (only rendered with a redis_url)."""


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str
    message: str


@dataclass(frozen=True)
class MissingKeySecret:
    """An AITenant's key Secret that does not exist yet (the operator generates it)."""

    tenant: str
    secret: str
    key: str | None


@dataclass(kw_only=True)
class Rendering:
    config: SluiceConfig
    credentials: dict[str, bytes]
    """Provider name → API key: the data of the credentials Secret."""
    verdicts: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    """(plural, name) → verdict, for every resource of the snapshot."""
    missing_key_secrets: list[MissingKeySecret] = field(default_factory=list)
    referenced_secrets: frozenset[str] = frozenset()


class RenderError(Exception):
    """The assembled config fails the proxy's validation: a renderer bug, never published."""


def key_digest(value: bytes) -> str | None:
    """SHA-256 hex of a gateway key as clients send it (surrounding whitespace dropped); None if empty."""
    text = value.strip()
    return hash_key(text) if text else None


def _ordered(resources: Iterable[Resource], plural: str) -> list[Resource]:
    return sorted((r for r in resources if r.plural == plural), key=lambda r: (r.created, r.name))


def _problems_under(config: SluiceConfig, prefix: str) -> str:
    """Cross-field problems of a one-item config, with ``prefix`` (``routes[0]``) shown as ``spec``."""
    return "; ".join(
        f"spec{p.path.removeprefix(prefix)}: {p.message}" if p.path.startswith(prefix) else str(p)
        for p in check(config)
    )


class _Renderer:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.verdicts: dict[tuple[str, str], Verdict] = {}
        self.credentials: dict[str, bytes] = {}
        self.missing: list[MissingKeySecret] = []
        self.referenced: set[str] = set()
        self.provider_reasons: dict[str, str] = {}

    def reject(self, plural: str, name: str, reason: str, message: str) -> None:
        self.verdicts[(plural, name)] = Verdict(False, reason, message)

    def accept(self, plural: str, name: str, message: str) -> None:
        self.verdicts[(plural, name)] = Verdict(True, ACCEPTED, message)

    def secret_value(self, plural: str, name: str, secret: str, key: str) -> bytes | None:
        self.referenced.add(secret)
        data = self.snapshot.secrets.get(secret)
        if data is None:
            self.reject(plural, name, SECRET_NOT_FOUND, f"Secret '{secret}' not found in this namespace")
            return None
        if key not in data:
            known = ", ".join(sorted(data)) or "none"
            self.reject(plural, name, KEY_MISSING, f"Secret '{secret}' has no key '{key}' (keys: {known})")
            return None
        return data[key]

    def providers(self) -> list[Provider]:
        served: list[Provider] = []
        for res in _ordered(self.snapshot.resources, PROVIDERS):
            try:
                spec = decode_spec(res.spec, ProviderSecretSpec)
            except SpecError as exc:
                self.reject(PROVIDERS, res.name, INVALID, str(exc))
                continue
            api_key: SecretRef | None = None
            if (ref := spec.api_key_secret_ref) is not None:
                value = self.secret_value(PROVIDERS, res.name, ref.name, ref.key)
                if value is None:
                    continue
                self.credentials[res.name] = value.strip()
                api_key = SecretRef(file=f"{CREDENTIALS_DIR}/{res.name}")
            provider = Provider(
                name=res.name,
                type=spec.type,
                base_url=spec.base_url,
                api_key=api_key,
                api_version=spec.api_version,
                headers=spec.headers,
            )
            if problems := _problems_under(SluiceConfig(providers=[provider]), "providers[0]"):
                self.credentials.pop(res.name, None)
                self.reject(PROVIDERS, res.name, INVALID, problems)
                continue
            served.append(provider)
            self.accept(PROVIDERS, res.name, f"serving provider '{res.name}' ({spec.type})")
        return served

    def routes(self, providers: list[Provider]) -> list[Route]:
        known = {p.name for p in providers}
        owner: dict[str, str] = {}
        served: list[Route] = []
        for res in _ordered(self.snapshot.resources, ROUTES):
            try:
                route = decode_spec(res.spec, Route)
            except SpecError as exc:
                self.reject(ROUTES, res.name, INVALID, str(exc))
                continue
            missing = sorted({b.provider for b in route.backends} - known)
            if missing:
                detail = ", ".join(f"'{m}'" + self._why_not_ready(m) for m in missing)
                self.reject(ROUTES, res.name, PROVIDER_NOT_FOUND, f"no Ready ProviderSecret {detail}")
                continue
            if route.model in owner:
                self.reject(
                    ROUTES,
                    res.name,
                    INVALID,
                    f"spec.model: '{route.model}' is already routed by AIRoute '{owner[route.model]}'",
                )
                continue
            if problems := _problems_under(SluiceConfig(providers=providers, routes=[route]), "routes[0]"):
                self.reject(ROUTES, res.name, INVALID, problems)
                continue
            owner[route.model] = res.name
            served.append(route)
            self.accept(ROUTES, res.name, f"serving model '{route.model}'")
        return served

    def _why_not_ready(self, provider: str) -> str:
        verdict = self.verdicts.get((PROVIDERS, provider))
        return "" if verdict is None else f" (it is {verdict.reason})"

    def tenant_keys(self, name: str, spec: AITenantSpec) -> list[str] | None:
        ref = spec.key_secret_ref
        self.referenced.add(ref.name)
        if ref.name not in self.snapshot.secrets:
            self.missing.append(MissingKeySecret(name, ref.name, ref.key))
            self.reject(TENANTS, name, SECRET_NOT_FOUND, f"Secret '{ref.name}' not found; generating a key")
            return None
        if ref.key is not None:
            value = self.secret_value(TENANTS, name, ref.name, ref.key)
            values = [] if value is None else [value]
            if value is None:
                return None
        else:
            values = list(self.snapshot.secrets[ref.name].values())
        digests = sorted({d for v in values if (d := key_digest(v)) is not None})
        if not digests:
            self.reject(TENANTS, name, KEY_MISSING, f"Secret '{ref.name}' holds no non-empty key")
            return None
        return digests

    def tenants(self, routes: list[Route]) -> list[Tenant]:
        models = {r.model for r in routes}
        key_owner: dict[str, str] = {}
        served: list[Tenant] = []
        for res in _ordered(self.snapshot.resources, TENANTS):
            try:
                spec = decode_spec(res.spec, AITenantSpec)
            except SpecError as exc:
                self.reject(TENANTS, res.name, INVALID, str(exc))
                continue
            digests = self.tenant_keys(res.name, spec)
            if digests is None:
                continue
            if clash := sorted({key_owner[d] for d in digests if d in key_owner}):
                self.reject(
                    TENANTS,
                    res.name,
                    INVALID,
                    f"a key in Secret '{spec.key_secret_ref.name}' is already "
                    f"used by AITenant {', '.join(repr(c) for c in clash)}; every tenant needs its own keys",
                )
                continue
            key_owner.update(dict.fromkeys(digests, res.name))
            unknown = [r for r in spec.routes if r != "*" and r not in models]
            served.append(
                Tenant(
                    name=res.name,
                    keys=[TenantKey(sha256=d) for d in digests],
                    routes=[r for r in spec.routes if r not in unknown],
                    limits=spec.limits,
                    model_limits=spec.model_limits,
                    budget=spec.budget,
                )
            )
            if unknown:
                self.reject(
                    TENANTS,
                    res.name,
                    ROUTE_NOT_FOUND,
                    f"serving without route(s) {', '.join(repr(u) for u in unknown)}: no Ready AIRoute "
                    "routes that model",
                )
            else:
                self.accept(TENANTS, res.name, f"serving {len(digests)} key(s)")
        return served


def render(snapshot: Snapshot) -> Rendering:
    """The namespace's proxy config and a verdict per resource; raises RenderError on a renderer bug."""
    r = _Renderer(snapshot)
    providers = r.providers()
    routes = r.routes(providers)
    tenants = r.tenants(routes)
    redis = None
    if snapshot.redis_url:
        # One prefix per namespace: tenants of the same name in two namespaces never share budgets.
        redis = RedisSettings(
            url=snapshot.redis_url,
            key_prefix=f"sluice:{snapshot.namespace}",
            quota_leases=snapshot.quota_leases,
        )
    config = SluiceConfig(redis=redis, providers=providers, routes=routes, tenants=tenants)
    try:
        decode(to_builtins(config), source=f"rendered config of namespace {snapshot.namespace}")
    except ValueError as exc:
        raise RenderError(str(exc)) from exc
    return Rendering(
        config=config,
        credentials=r.credentials,
        verdicts=r.verdicts,
        missing_key_secrets=r.missing,
        referenced_secrets=frozenset(r.referenced),
    )
