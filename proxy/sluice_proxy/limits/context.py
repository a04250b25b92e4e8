"""App lifetime of the limiter and the response cache, which share one Redis connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ..cache import ResponseCache
from ..config.schema import RedisSettings
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
