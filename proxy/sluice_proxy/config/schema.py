"""The configuration schema: the contract between the proxy and the operator.

One YAML file with three lists that mirror the three custom resources:
``providers`` (ProviderSecret), ``routes`` (AIRoute) and ``tenants`` (AITenant).
Keys are camelCase on the wire and snake_case in Python (``rename="camel"``), so an
``AIRoute.spec`` decodes straight into a :class:`Route`.

This module imports nothing beyond msgspec: the operator imports it too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import msgspec

Duration = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
        description="Go-style duration such as 200ms, 60s, 1m30s",
    ),
]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Name = Annotated[
    str, msgspec.Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
]


class _Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel", frozen=True):
    """Base for every config object: strict (unknown fields are errors), camelCase on the wire.

    Frozen, because a reload hands unchanged items of the last config to the next one
    (``codec.Reuse``); mypy wants each subclass to say ``frozen=True`` as well.
    """


class ProviderType(StrEnum):
    OPENAI = "openai"
    AZURE_OPENAI = "azure-openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OLLAMA = "ollama"
    MOCK = "mock"


DEFAULT_BASE_URLS: dict[ProviderType, str] = {
    ProviderType.OPENAI: "https://api.openai.com/v1",
    ProviderType.ANTHROPIC: "https://api.anthropic.com",
    ProviderType.GEMINI: "https://generativelanguage.googleapis.com",
    ProviderType.OLLAMA: "http://127.0.0.1:11434",
    ProviderType.MOCK: "mock://",
}


class FallbackReason(StrEnum):
    """Failure classes after which a request moves on to the next backend."""

    RATE_LIMIT = "rateLimit"
    TIMEOUT = "timeout"
    SERVER_ERROR = "serverError"
    CONNECTION_ERROR = "connectionError"


class SecretRef(_Struct, frozen=True):
    """Where a secret comes from: exactly one of ``env``, ``file`` or ``value``."""

    env: str | None = None
    file: str | None = None
    value: str | None = None


class Listen(_Struct, frozen=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8080


class RedisSettings(_Struct, frozen=True):
    url: str
    timeout: Duration = "50ms"
    fail_mode: Literal["open", "closed"] = "open"
    key_prefix: str = "sluice"
    quota_leases: bool = True
    """Admit a busy tenant's requests against quota leased from Redis ahead of them (limits/leases.py)."""


class Pricing(_Struct, frozen=True):
    """USD per million tokens."""

    input: NonNegativeFloat
    output: NonNegativeFloat
    cached_input: NonNegativeFloat | None = None


class Provider(_Struct, frozen=True):
    """One upstream account (ProviderSecret)."""

    name: Name
    type: ProviderType
    base_url: str | None = msgspec.field(default=None, name="baseURL")
    api_key: SecretRef | None = None
    api_version: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class Backend(_Struct, frozen=True):
    """One upstream target of a route: tried by ``priority``, then by ``weight``."""

    provider: Name
    model: Annotated[str, msgspec.Meta(min_length=1)]
    priority: Annotated[int, msgspec.Meta(ge=0)] = 0
    weight: Annotated[int, msgspec.Meta(ge=0)] = 1
    pricing: Pricing | None = None


class Retry(_Struct, frozen=True):
    attempts: Annotated[int, msgspec.Meta(ge=0, le=10)] = 2
    backoff: Duration = "200ms"


class CacheSettings(_Struct, frozen=True):
    enabled: bool = True
    ttl: Duration = "5m"
    shared: bool = False


class Limits(_Struct, frozen=True):
    """Ceilings per minute; absent means unlimited."""

    requests_per_minute: PositiveInt | None = None
    tokens_per_minute: PositiveInt | None = None
    concurrency: PositiveInt | None = None


class Route(_Struct, frozen=True):
    """Maps the model name clients send to an ordered set of backends (AIRoute)."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    backends: Annotated[list[Backend], msgspec.Meta(min_length=1)]
    timeout: Duration = "60s"
    retry: Retry = msgspec.field(default_factory=Retry)
    fallback_on: list[FallbackReason] = msgspec.field(
        default_factory=lambda: [
            FallbackReason.RATE_LIMIT,
            FallbackReason.TIMEOUT,
            FallbackReason.SERVER_ERROR,
            FallbackReason.CONNECTION_ERROR,
        ]
    )
    cache: CacheSettings | None = None
    limits: Limits | None = None


class TenantKey(_Struct, frozen=True):
    """A gateway key: its SHA-256 hex digest, or (local use only) its value."""

    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    value: Annotated[str, msgspec.Meta(min_length=8)] | None = None


class Budget(_Struct, frozen=True):
    usd: NonNegativeFloat
    period: Literal["day", "month"] = "month"
    alert_percent: Annotated[float, msgspec.Meta(gt=0, le=100)] | None = None


class ModelLimits(Limits, kw_only=True, frozen=True):
    model: Annotated[str, msgspec.Meta(min_length=1)]


class Tenant(_Struct, frozen=True):
    """A team or application holding gateway keys (AITenant)."""

    name: Name
    keys: Annotated[list[TenantKey], msgspec.Meta(min_length=1)]
    routes: list[str] = msgspec.field(default_factory=lambda: ["*"])
    limits: Limits | None = None
    model_limits: list[ModelLimits] = msgspec.field(default_factory=list)
    budget: Budget | None = None


class Server(_Struct, frozen=True):
    max_body_bytes: PositiveInt = 8 * 1024 * 1024
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class Metrics(_Struct, frozen=True):
    tenant_labels: bool = True


class SluiceConfig(_Struct, frozen=True):
    """The whole proxy configuration."""

    version: Literal[1] = 1
    listen: Listen = msgspec.field(default_factory=Listen)
    server: Server = msgspec.field(default_factory=Server)
    metrics: Metrics = msgspec.field(default_factory=Metrics)
    redis: RedisSettings | None = None
    providers: list[Provider] = msgspec.field(default_factory=list)
    routes: list[Route] = msgspec.field(default_factory=list)
    tenants: list[Tenant] = msgspec.field(default_factory=list)
