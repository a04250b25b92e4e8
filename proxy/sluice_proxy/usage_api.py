"""GET /v1/usage: the calling tenant's spend and tokens this day and month, budget and limits."""

from __future__ import annotations

import orjson
from aiohttp import web

from . import auth
from .limits.context import LIMITER
from .state import CONTEXT, GATEWAY


async def usage(request: web.Request) -> web.Response:
    tenant = auth.authenticate(request.headers, request.app[GATEWAY].runtime)
    request[CONTEXT].tenant = tenant.name
    report = await request.app[LIMITER].snapshot(tenant)
    return web.Response(body=orjson.dumps(report), content_type="application/json")
