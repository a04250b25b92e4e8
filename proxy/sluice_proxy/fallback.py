"""Try a request's backends in order: retry with jittered backoff, then fall back.

Only failures whose class the route lists in ``fallbackOn`` move on; a client error
(400, 404, …) is final. Nothing here runs after the first byte reached the client: for
streams the first body slice is read before a backend counts as answered, so a slow first
byte still falls back.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import metrics
from .breaker import Breakers
from .errors import (
    GatewayError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamStatusError,
    error_type_for_status,
    reason_for_status,
)
from .providers import UpstreamRequest
from .runtime import RuntimeBackend, RuntimeRoute
from .upstream import Upstream, UpstreamResponse

MAX_BACKOFF = 5.0
# A Retry-After longer than this is not waited for: the next backend is tried instead.
MAX_RETRY_AFTER = 10.0


@dataclass(slots=True, init=False)  # its own __init__: see setup.py
class Opened:
    backend: RuntimeBackend
    response: UpstreamResponse
    first: bytes
    """The first body slice of a stream (b"" for whole responses)."""

    def __init__(self, backend: RuntimeBackend, response: UpstreamResponse, first: bytes) -> None:
        self.backend = backend
        self.response = response
        self.first = first


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue  # an HTTP date: not worth parsing for a sub-minute wait
    return None


def status_error(
    backend: RuntimeBackend, status: int, body: bytes, headers: Mapping[str, str]
) -> GatewayError:
    """The gateway error for an upstream error status, with the provider's message."""
    provider = backend.target.provider
    message = backend.adapter.error_message(status, body)
    reason = reason_for_status(status)
    if reason is not None:
        retry_after = retry_after_seconds(headers)
        extra = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
        return UpstreamStatusError(
            f"provider '{provider}' answered HTTP {status}: {message}",
            reason=reason,
            retry_after=retry_after,
            status=429 if status == 429 else 502,
            headers=extra,
        )
    if status in (401, 403):
        return UpstreamStatusError(
            f"provider '{provider}' rejected the gateway's credentials (HTTP {status}): {message}; "
            "check the provider's apiKey in the Sluice configuration",
            reason=None,
            status=502,
        )
    return error_type_for_status(status)(f"provider '{provider}' rejected the request: {message}")


def _backoff(route: RuntimeRoute, attempt: int, error: UpstreamError) -> float:
    delay: float = min(MAX_BACKOFF, route.backoff * (2**attempt)) * random.uniform(0.5, 1.5)
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return delay


async def open_response(
    upstream: Upstream,
    route: RuntimeRoute,
    backends: Sequence[RuntimeBackend],
    build: Callable[[RuntimeBackend], UpstreamRequest],
    *,
    breakers: Breakers,
    stream: bool,
) -> Opened:
    """The first backend that answers successfully; raises the last failure otherwise."""
    last: UpstreamError | None = None
    for backend in backends:
        provider = backend.target.provider
        if last is not None:
            metrics.FALLBACKS.labels(route.model, provider, last.reason or "").inc()
        for attempt in range(route.retry_attempts + 1):
            if not breakers.allow(backend.key):
                break
            if attempt:
                metrics.RETRIES.labels(provider).inc()
            try:
                return await _attempt(
                    upstream, route, backend, build(backend), stream=stream, breakers=breakers
                )
            except UpstreamError as error:
                metrics.UPSTREAM_ERRORS.labels(provider, error.reason or "status").inc()
                if error.reason is None:
                    raise
                breakers.failure(backend.key)
                last = error
                if error.reason not in route.fallback_on:
                    raise
                if attempt == route.retry_attempts:
                    break
                delay = _backoff(route, attempt, error)
                if delay > MAX_RETRY_AFTER:
                    break
                await asyncio.sleep(delay)
    if last is not None:
        raise last
    raise ServiceUnavailableError(
        f"no healthy backend for model '{route.model}': every circuit is open; retry shortly",
        headers={"Retry-After": "5"},
    )


async def _attempt(
    upstream: Upstream,
    route: RuntimeRoute,
    backend: RuntimeBackend,
    request: UpstreamRequest,
    *,
    stream: bool,
    breakers: Breakers,
) -> Opened:
    response = await upstream.send(request, backend.target, timeout=route.timeout, stream=stream)
    try:
        if response.status >= 400:
            body = await response.read()
            raise status_error(backend, response.status, body, response.headers)
        first = await response.read_chunk() if stream else b""
    except BaseException:
        response.close()
        raise
    breakers.success(backend.key)
    return Opened(backend, response, first)
