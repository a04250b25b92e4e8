"""App lifetime of the limiter and the response cache, which share one Redis pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from ..cache import ResponseCache
from ..config.schema import RedisSettings
from ..runtime import RuntimeRoute, RuntimeTenant
from ..tokens import estimate_prompt_tokens
from .limiter import Limiter

LIMITER = web.AppKey("limiter", Limiter)
RESPONSE_CACHE = web.AppKey("response_cache", ResponseCache)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def limits_context(redis: RedisSettings | None) -> CleanupContext:
    """Start both at app startup from the startup config's ``redis``; close them at shutdown."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        limiter = await Limiter.start(redis)
        app[LIMITER] = limiter
        app[RESPONSE_CACHE] = ResponseCache(limiter.redis, timeout=limiter.timeout or 0.05)
        yield
        await limiter.close()

    return context


def estimate_tokens(
    limiter: Limiter, tenant: RuntimeTenant, route: RuntimeRoute, body: dict[str, Any]
) -> int:
    """Tokens to reserve at admission: 0 unless a token limit applies.

    The prompt's estimate plus the output the request allows (``max_completion_tokens`` or
    ``max_tokens``), so concurrent requests cannot overrun a token limit before their usage lands.
    """
    if not limiter.wants_tokens(tenant, route):
        return 0
    output = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return estimate_prompt_tokens(body) + (output if isinstance(output, int) else 0)
