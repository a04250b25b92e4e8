"""One async function per endpoint; each reads as the request's straight line."""

from __future__ import annotations

import dataclasses
import time

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from . import auth, cache, fallback, metrics, pricing, routing, streaming
from .errors import BadRequestError, NotFoundError, PermissionDeniedError, RequestTooLargeError, UpstreamError
from .ingress import ANTHROPIC, OPENAI, Ingress
from .ingress.openai import parse_json_object, require_model
from .limits.context import LIMITER, RESPONSE_CACHE
from .providers import UpstreamRequest, Usage
from .runtime import RuntimeBackend, RuntimeConfig, RuntimeRoute, RuntimeTenant
from .state import CONTEXT, GATEWAY, RequestContext

JSON_TYPE = "application/json"
JSON_HEADERS = {"Content-Type": JSON_TYPE}


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes before reading them where possible."""
    length = request.content_length
    if length is not None:
        if length > limit:
            raise RequestTooLargeError(f"the request body is {length} bytes; the limit is {limit}")
        return await request.read()
    body = bytearray()  # chunked: count as it arrives
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise RequestTooLargeError(f"the request body is over the {limit}-byte limit")
    return bytes(body)


MALFORMED = (ValueError, KeyError, TypeError, AttributeError)
"""What an adapter raises on a body it cannot decode."""


def malformed_answer(backend: RuntimeBackend, error: Exception) -> UpstreamError:
    """A 200 whose body the adapter cannot decode is the provider's fault: 502, not 500."""
    return UpstreamError(
        f"provider '{backend.target.provider}' sent an answer that is not valid "
        f"{backend.target.type} JSON ({type(error).__name__})",
        reason=None,
    )


def resolve_route(runtime: RuntimeConfig, tenant: RuntimeTenant, model: str) -> RuntimeRoute:
    route = runtime.route_for(model)
    if route is None:
        raise NotFoundError(
            f"the model '{model}' does not exist or is not served by this gateway", param="model"
        )
    if not tenant.may_use(route.model):
        raise PermissionDeniedError(f"tenant '{tenant.name}' may not use model '{model}'", param="model")
    return route


def _upstream_model(backend: RuntimeBackend, requested: str) -> str:
    """A backend model of ``*`` forwards the model name the client asked for."""
    return requested if backend.target.model == "*" else backend.target.model


def _response_headers(ctx: RequestContext, backend: RuntimeBackend) -> dict[str, str]:
    return {
        "x-request-id": ctx.request_id,
        "x-sluice-provider": backend.target.provider,
        "x-sluice-model": ctx.upstream_model,
    }


def _account(
    ctx: RequestContext, backend: RuntimeBackend, usage: Usage | None, operation: str, runtime: RuntimeConfig
) -> float | None:
    """Record a finished response's metrics and cost; the cost is None for an unknown price."""
    ctx.usage = usage
    counted = usage or Usage()
    target = backend.target
    ctx.cost_usd = pricing.cost_usd(counted, pricing.price_for(ctx.upstream_model, target.pricing))
    # Tenant labels on tokens and cost can be turned off for cardinality (metrics.tenantLabels).
    tenant = ctx.tenant if runtime.config.metrics.tenant_labels else ""
    metrics.observe_response(
        operation=operation,
        provider_type=str(target.type),
        provider=target.provider,
        tenant=tenant,
        request_model=ctx.model,
        response_model=ctx.upstream_model,
        duration=time.perf_counter() - ctx.started,
        time_to_first_token=None if ctx.first_token_at is None else ctx.first_token_at - ctx.started,
        input_tokens=counted.input_tokens,
        output_tokens=counted.output_tokens,
        cached_input_tokens=counted.cached_input_tokens,
        cost_usd=ctx.cost_usd,
    )
    return ctx.cost_usd


async def chat(request: web.Request, ingress: Ingress) -> web.StreamResponse:
    """Any chat ingress → routed, limited, fallen-back upstream call → the client's format."""
    gateway = request.app[GATEWAY]
    runtime = gateway.runtime
    ctx = request[CONTEXT]
    tenant = auth.authenticate(request.headers, runtime)
    ctx.tenant = tenant.name
    call = ingress.parse_chat(await read_body(request, runtime.config.server.max_body_bytes))
    ctx.model, ctx.stream = call.model, call.stream
    route = resolve_route(runtime, tenant, call.model)
    ctx.route = route.model
    # cache: a deterministic request on a caching route may be answered from the cache, at no cost.
    response_cache = request.app[RESPONSE_CACHE]
    cache_key = cache.lookup_key(call.body, request.headers, tenant=tenant.name, settings=route.spec.cache)
    if cache_key is not None and (hit := await response_cache.get(cache_key, route.model)) is not None:
        return await cache.serve_hit(request, ingress, call, hit, ctx.request_id)
    # limits: admitted here or refused with 429/503; settled exactly once below, whatever happens.
    limiter = request.app[LIMITER]
    estimate = limiter.tokens_to_reserve(tenant, route, call.body)
    admission = await limiter.admit(tenant, route, estimated_tokens=estimate)
    try:
        backends = routing.plan(route, gateway.breakers)

        def build(backend: RuntimeBackend) -> UpstreamRequest:
            target = backend.target
            if target.model == "*":
                target = dataclasses.replace(target, model=call.model)
            return backend.adapter.chat_request(call.body, target, stream=call.stream)

        metrics.observe_overhead(time.perf_counter() - ctx.started)
        opened = await fallback.open_response(
            gateway.upstream, route, backends, build, breakers=gateway.breakers, stream=call.stream
        )
        backend = opened.backend
        ctx.provider, ctx.upstream_model = backend.target.provider, _upstream_model(backend, call.model)
        headers = {**_response_headers(ctx, backend), **admission.headers}
        if cache_key is not None:
            headers[cache.HEADER] = "miss"
        if call.stream:
            outcome = await streaming.relay(request, opened, ingress=ingress, call=call, headers=headers)
            ctx.first_token_at = outcome.first_token_at
            ctx.usage_estimated = outcome.usage_estimated
            if outcome.error is not None:
                ctx.error = outcome.error.message
            cost = _account(ctx, backend, outcome.usage, "chat", runtime)
            limiter.settle_soon(admission, outcome.usage, cost)
            return outcome.response
        try:
            raw = await opened.response.read()
        finally:
            opened.response.close()
        try:  # a plain try: a generator context manager is four Python calls per request
            data, usage = backend.adapter.chat_response(raw, backend.target)
        except MALFORMED as error:
            raise malformed_answer(backend, error) from error
        cost = _account(ctx, backend, usage, "chat", runtime)
        limiter.settle_soon(admission, usage, cost)
        if cache_key is not None and route.spec.cache is not None:
            await response_cache.put(cache_key, data, route.spec.cache)
        headers["Content-Type"] = JSON_TYPE
        # OpenAI to OpenAI: the answer was read for its usage; the client gets its bytes as they came.
        same_format = ingress.speaks_openai and backend.adapter.speaks_openai
        return web.Response(body=raw if same_format else ingress.render_response(data), headers=headers)
    finally:
        limiter.release(admission)  # a no-op once settled: frees the slot of a failed request


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await chat(request, OPENAI)


async def messages(request: web.Request) -> web.StreamResponse:
    """Anthropic Messages for Anthropic-SDK clients; any provider serves it."""
    return await chat(request, ANTHROPIC)


async def embeddings(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    runtime = gateway.runtime
    ctx = request[CONTEXT]
    tenant = auth.authenticate(request.headers, runtime)
    ctx.tenant = tenant.name
    body = parse_json_object(await read_body(request, runtime.config.server.max_body_bytes))
    ctx.model = require_model(body)
    if "input" not in body:
        raise BadRequestError(
            "you must provide an input parameter", param="input", code="missing_required_parameter"
        )
    route = resolve_route(runtime, tenant, ctx.model)
    ctx.route = route.model
    # limits: embeddings count against the same request, token and budget limits as chat.
    limiter = request.app[LIMITER]
    admission = await limiter.admit(tenant, route, estimated_tokens=0)
    try:
        backends = routing.plan(route, gateway.breakers)
        opened = await fallback.open_response(
            gateway.upstream,
            route,
            backends,
            lambda b: b.adapter.embeddings_request(body, b.target),
            breakers=gateway.breakers,
            stream=False,
        )
        backend = opened.backend
        ctx.provider, ctx.upstream_model = backend.target.provider, _upstream_model(backend, ctx.model)
        try:
            raw = await opened.response.read()
        finally:
            opened.response.close()
        try:
            data, usage = backend.adapter.embeddings_response(raw, backend.target)
        except MALFORMED as error:
            raise malformed_answer(backend, error) from error
        cost = _account(ctx, backend, usage, "embeddings", runtime)
        limiter.settle_soon(admission, usage, cost)
        headers = {**_response_headers(ctx, backend), **admission.headers, **JSON_HEADERS}
        return web.Response(
            body=raw if backend.adapter.speaks_openai else orjson.dumps(data), headers=headers
        )
    finally:
        limiter.release(admission)


async def models(request: web.Request) -> web.Response:
    """The models the caller's tenant may use (glob routes are listed as written)."""
    runtime = request.app[GATEWAY].runtime
    tenant = auth.authenticate(request.headers, runtime)
    request[CONTEXT].tenant = tenant.name
    names = [r.model for r in (*runtime.routes.values(), *runtime.patterns) if tenant.may_use(r.model)]
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "sluice"} for name in names]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=JSON_TYPE)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', headers=JSON_HEADERS)


async def readyz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    if gateway.waiting_for is not None:
        waiting = {"status": "waiting for configuration", "path": gateway.waiting_for}
        return web.Response(status=503, body=orjson.dumps(waiting), content_type=JSON_TYPE)
    body = {
        "status": "ready",
        "config": gateway.runtime.checksum,
        "lastReloadError": gateway.config_error,
        # Still ready while degraded: under failMode open the local limiter keeps serving.
        "limiterDegraded": request.app[LIMITER].degraded,
    }
    return web.Response(body=orjson.dumps(body), content_type=JSON_TYPE)


async def prometheus(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})
