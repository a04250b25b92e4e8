"""A fake OpenAI-format upstream on loopback, scripted per test.

Each request takes the next :class:`Reply` from the script (the last one repeats) and is
recorded, so tests can assert exactly what the gateway sent upstream.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    text: str = "hello from upstream"
    stream_words: int = 3
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "upstream failure"
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None
    """Close the connection after this many chunks (a broken stream)."""
    stall_at: int | None = None
    """Before this chunk, wait ``stall`` seconds (a stream that stops mid-way)."""
    stall: float = 0.0
    usage: tuple[int, int] = (11, 7)
    raw_body: bytes | None = None
    """A 200 carrying these bytes instead of a completion (an answer that does not decode)."""


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: list[Reply] = [Reply()]
        self.requests: list[Recorded] = []
        self.disconnects = 0
        self.finished_streams = 0
        self._lock = threading.Lock()
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_post("/v1/embeddings", self._embeddings)
        self.app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)

    def respond(self, *replies: Reply) -> None:
        with self._lock:
            self.script = list(replies)
            self.requests.clear()

    def _next(self) -> Reply:
        with self._lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = orjson.loads(await request.read())
        with self._lock:
            self.requests.append(Recorded(request.path_qs, dict(request.headers), body))
        return body

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        reply = self._next()
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.status != 200:
            error = {
                "error": {"message": reply.error_message, "type": "server_error", "param": None, "code": None}
            }
            return web.json_response(error, status=reply.status, headers=reply.headers)
        if reply.raw_body is not None:
            return web.Response(body=reply.raw_body, content_type="application/json")
        model = body["model"]
        if body.get("stream"):
            return await self._stream(
                request, reply, model, bool((body.get("stream_options") or {}).get("include_usage"))
            )
        prompt, completion = reply.usage
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
            headers=reply.headers,
        )

    async def _stream(
        self, request: web.Request, reply: Reply, model: str, include_usage: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **reply.headers})
        await response.prepare(request)
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}
        events = [
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ],
            }
        ]
        events += [
            {**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
            for i in range(reply.stream_words)
        ]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if include_usage:
            prompt, completion = reply.usage
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            events.append({**base, "choices": [], "usage": usage})
        try:
            for i, event in enumerate(events):
                if reply.cut_after is not None and i >= reply.cut_after:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if reply.chunk_delay and i:
                    await asyncio.sleep(reply.chunk_delay)
                if i == reply.stall_at:
                    await asyncio.sleep(reply.stall)
                await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            with self._lock:
                self.disconnects += 1
            raise
        with self._lock:
            self.finished_streams += 1
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i, _ in enumerate(inputs)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            }
        )
