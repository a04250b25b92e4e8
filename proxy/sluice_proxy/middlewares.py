"""Request context, error rendering in the caller's wire format, and the access log line."""

from __future__ import annotations

import itertools
import os
import time
from typing import ClassVar

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from . import metrics
from .errors import GatewayError, ServiceUnavailableError
from .ingress import for_path
from .logs import LOG
from .state import ACCESS_LOG, CONTEXT, GATEWAY, SERVER, RequestContext

# Request ids: a random per-process prefix and a counter; unique without a syscall per request.
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)
_UNLOGGED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _request_id(request: web.Request) -> str:
    given = request.headers.get("x-request-id", "")
    # Accept a caller's id only when it is short and printable: it ends up in logs.
    if 0 < len(given) <= 128 and given.isprintable():
        return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


class _GatewayMiddleware:
    """Every request's context, its error rendered in the caller's format, its metrics and access line.

    A callable object rather than an ``@web.middleware`` function: that decorator sets an
    attribute on the function, which a function compiled by mypyc does not take.
    """

    __middleware_version__: ClassVar[int] = 1  # what @web.middleware sets: the new-style signature

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = RequestContext(_request_id(request), request.method, request.path)
        request[CONTEXT] = ctx
        metrics.inflight.add(1)
        try:
            try:
                waiting_for = request.app[GATEWAY].waiting_for
                if waiting_for is not None and request.path.startswith("/v1/"):
                    raise ServiceUnavailableError(
                        f"the gateway has no configuration yet (waiting for {waiting_for}); retry shortly",
                        headers={"Retry-After": "2"},
                    )
                response = await handler(request)
            except GatewayError as error:
                ctx.error = error.message
                response = _error_response(request, error, ctx.request_id)
            except web.HTTPException as exc:
                http_error = GatewayError(exc.reason or "error", code=str(exc.status))
                http_error.status, http_error.type = exc.status, "invalid_request_error"
                ctx.error = http_error.message
                response = _error_response(request, http_error, ctx.request_id)
            except Exception:
                LOG.exception("unhandled error", extra={"request_id": ctx.request_id})
                ctx.error = "internal error"
                internal = GatewayError("the gateway failed to handle this request; it has been logged")
                response = _error_response(request, internal, ctx.request_id)
            ctx.status = response.status
            if not response.prepared:  # a stream's headers are out already, with SERVER among them
                response.headers[hdrs.SERVER] = SERVER
            return response
        finally:
            metrics.inflight.add(-1)
            if ctx.model or ctx.tenant:
                # The route, not the raw model name: clients cannot mint label values with 404s.
                metrics.count_request(ctx.tenant, ctx.route, ctx.status)
            access_log = request.app[ACCESS_LOG]
            if access_log.enabled and ctx.path not in _UNLOGGED_PATHS:
                ctx.finished = time.perf_counter()
                access_log.emit(ctx)


gateway_middleware = _GatewayMiddleware()


def _error_response(request: web.Request, error: GatewayError, request_id: str) -> web.Response:
    headers = {"x-request-id": request_id, **error.headers}
    body = for_path(request.path).render_error(error)
    return web.Response(status=error.status, body=body, headers=headers, content_type="application/json")
