"""A fake Gemini API on loopback: generateContent, alt=sse streams, batchEmbedContents, Google errors.

Each request takes the next :class:`GeminiReply` from the script (the last one repeats) and
is recorded, so tests can assert the translated request, the API key header included.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.openai import Recorded

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
}


@dataclass
class GeminiReply:
    status: int = 200
    text: str = "Hello from Gemini"
    function_call: dict[str, Any] | None = None
    """A functionCall part to answer with: {"name", "args"}."""
    finish_reason: str = "STOP"
    usage: tuple[int, int] = (12, 5)
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "fake failure"
    first_byte_delay: float = 0.0
    cut_after: int | None = None
    """Close the connection after this many stream events (a broken stream)."""
    error_midway: bool = False
    """Send an error event after the first text event."""


class FakeGemini:
    def __init__(self) -> None:
        self.script: list[GeminiReply] = [GeminiReply()]
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self.app = web.Application()
        self.app.router.add_post("/v1beta/models/{call}", self._call)

    def respond(self, *replies: GeminiReply) -> None:
        with self._lock:
            self.script = list(replies)
            self.requests.clear()

    def _next(self) -> GeminiReply:
        with self._lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    async def _call(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        with self._lock:
            self.requests.append(Recorded(request.path_qs, dict(request.headers), body))
        model, _, method = request.match_info["call"].partition(":")
        reply = self._next()
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.status != 200:
            status = GOOGLE_STATUS.get(reply.status, "INTERNAL")
            error = {"error": {"code": reply.status, "message": reply.error_message, "status": status}}
            return web.json_response(error, status=reply.status, headers=reply.headers)
        if method == "batchEmbedContents":
            values = [{"values": [0.5, float(i)]} for i, _ in enumerate(body["requests"])]
            return web.json_response({"embeddings": values})
        if method == "streamGenerateContent" and request.query.get("alt") == "sse":
            return await self._stream(request, reply, model)
        if method != "generateContent":
            return web.json_response({"error": {"code": 404, "message": f"no method {method}"}}, status=404)
        parts: list[dict[str, Any]] = [{"text": reply.text}]
        if reply.function_call:
            parts.append({"functionCall": reply.function_call})
        return web.json_response(
            {
                **_candidate(parts, reply.finish_reason),
                "usageMetadata": _usage(reply.usage[0], reply.usage[1]),
                "modelVersion": model,
                "responseId": "resp-fake",
            }
        )

    async def _stream(self, request: web.Request, reply: GeminiReply, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        prompt, completion = reply.usage
        words = reply.text.split(" ")
        events = [
            {**_candidate([{"text": word + " "}], None), "usageMetadata": _usage(prompt, i)}
            for i, word in enumerate(words)
        ]
        if reply.error_midway:
            events.insert(
                1, {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
            )
        last: list[dict[str, Any]] = [{"functionCall": reply.function_call}] if reply.function_call else []
        events.append({**_candidate(last, reply.finish_reason), "usageMetadata": _usage(prompt, completion)})
        for i, event in enumerate(events):
            if reply.cut_after is not None and i >= reply.cut_after:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(b"data: " + orjson.dumps({**event, "modelVersion": model}) + b"\r\n\r\n")
            if "error" in event:
                break
        await response.write_eof()
        return response


def _candidate(parts: list[dict[str, Any]], finish_reason: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    return {"candidates": [candidate]}


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion,
        "totalTokenCount": prompt + completion,
    }
