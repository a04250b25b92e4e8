"""A fake Ollama server on loopback: /api/chat (JSON and NDJSON streams), /api/embed, Ollama errors.

Each request takes the next :class:`OllamaReply` from the script (the last one repeats) and
is recorded, so tests can assert the translated request.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.openai import Recorded


@dataclass
class OllamaReply:
    status: int = 200
    text: str = "Hello from Ollama"
    tool_call: dict[str, Any] | None = None
    """A tool call to answer with: {"name", "arguments"} (arguments an object, as Ollama sends)."""
    done_reason: str = "stop"
    usage: tuple[int, int] = (26, 4)
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "fake failure"
    first_byte_delay: float = 0.0
    cut_after: int | None = None
    """Close the connection after this many NDJSON lines (a broken stream)."""
    error_midway: bool = False
    """Send an {"error"} line after the first text line."""


class FakeOllama:
    def __init__(self) -> None:
        self.script: list[OllamaReply] = [OllamaReply()]
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self.app = web.Application()
        self.app.router.add_post("/api/chat", self._chat)
        self.app.router.add_post("/api/embed", self._embed)

    def respond(self, *replies: OllamaReply) -> None:
        with self._lock:
            self.script = list(replies)
            self.requests.clear()

    def _next(self) -> OllamaReply:
        with self._lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(await request.read())
        with self._lock:
            self.requests.append(Recorded(request.path_qs, dict(request.headers), body))
        return body

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        reply = self._next()
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.status != 200:
            return web.json_response(
                {"error": reply.error_message}, status=reply.status, headers=reply.headers
            )
        model = body["model"]
        tool_calls = [{"function": reply.tool_call}] if reply.tool_call else []
        final = {
            "model": model,
            "created_at": "2025-10-17T23:14:07.414671Z",
            "done": True,
            "done_reason": reply.done_reason,
            "prompt_eval_count": reply.usage[0],
            "eval_count": reply.usage[1],
        }
        if not body.get("stream", True):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return web.json_response({**final, "message": message})
        lines: list[dict[str, Any]] = [
            {"model": model, "message": {"role": "assistant", "content": word + " "}, "done": False}
            for word in reply.text.split(" ")
        ]
        if reply.error_midway:
            lines.insert(1, {"error": "an error was encountered while running the model"})
        if tool_calls:
            lines.append(
                {
                    "model": model,
                    "message": {"role": "assistant", "content": "", "tool_calls": tool_calls},
                    "done": False,
                }
            )
        lines.append({**final, "message": {"role": "assistant", "content": ""}})
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for i, line in enumerate(lines):
            if reply.cut_after is not None and i >= reply.cut_after:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(orjson.dumps(line) + b"\n")
            if "error" in line:
                break
        await response.write_eof()
        return response

    async def _embed(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = [[0.25, float(i)] for i, _ in enumerate(inputs)]
        return web.json_response(
            {"model": body["model"], "embeddings": vectors, "prompt_eval_count": 3 * len(inputs)}
        )
