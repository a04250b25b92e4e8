"""A fake Anthropic Messages upstream on loopback: JSON answers, SSE event streams, errors."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class AnthropicReply:
    status: int = 200
    text: str = "Hello from Claude"
    tool: dict[str, Any] | None = None
    """A tool_use block to answer with: {"id", "name", "input"}."""
    stop_reason: str = "end_turn"
    usage: tuple[int, int] = (21, 9)
    error_type: str = "overloaded_error"
    error_midway: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    first_byte_delay: float = 0.0
    cut_after: int | None = None
    """Close the connection after this many stream events (a broken stream)."""


class FakeAnthropic:
    def __init__(self) -> None:
        self.reply = AnthropicReply()
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.app = web.Application()
        self.app.router.add_post("/v1/messages", self._messages)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        with self._lock:
            self.requests.append((dict(request.headers), body))
        reply = self.reply
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        if reply.status != 200:
            error = {"type": "error", "error": {"type": reply.error_type, "message": "fake failure"}}
            return web.json_response(error, status=reply.status, headers=reply.headers)
        if body.get("stream"):
            return await self._stream(request, reply, body["model"])
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}]
        if reply.tool:
            content.append({"type": "tool_use", **reply.tool})
        return web.json_response(
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": "tool_use" if reply.tool else reply.stop_reason,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": reply.usage[0],
                    "output_tokens": reply.usage[1],
                    "cache_read_input_tokens": 4,
                    "cache_creation_input_tokens": 0,
                },
            }
        )

    async def _stream(self, request: web.Request, reply: AnthropicReply, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            await self._events(response, reply, model)
        except _Cut:
            assert request.transport is not None
            request.transport.close()
        return response

    async def _events(self, response: web.StreamResponse, reply: AnthropicReply, model: str) -> None:
        sent = 0

        async def send(name: str, payload: dict[str, Any]) -> None:
            nonlocal sent
            if reply.cut_after is not None and sent >= reply.cut_after:
                raise _Cut
            sent += 1
            await response.write(
                f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **payload}) + b"\n\n"
            )

        await send(
            "message_start",
            {
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": reply.usage[0], "output_tokens": 1},
                }
            },
        )
        await send("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        await send("ping", {})
        for word in reply.text.split(" "):
            await send(
                "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word + " "}}
            )
            if reply.error_midway:
                await send("error", {"error": {"type": reply.error_type, "message": "Overloaded"}})
                return
        await send("content_block_stop", {"index": 0})
        stop_reason = reply.stop_reason
        if reply.tool:
            stop_reason = "tool_use"
            await send(
                "content_block_start",
                {
                    "index": 1,
                    "content_block": {
                        "type": "tool_use",
                        "id": reply.tool["id"],
                        "name": reply.tool["name"],
                        "input": {},
                    },
                },
            )
            arguments = orjson.dumps(reply.tool["input"]).decode()
            for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                await send(
                    "content_block_delta",
                    {"index": 1, "delta": {"type": "input_json_delta", "partial_json": part}},
                )
            await send("content_block_stop", {"index": 1})
        await send(
            "message_delta",
            {
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.usage[1]},
            },
        )
        await send("message_stop", {})
        await response.write_eof()


class _Cut(Exception):
    """The script cuts the stream here."""
