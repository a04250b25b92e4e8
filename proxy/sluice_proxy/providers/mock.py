"""The ``mock`` provider: a deterministic echo that needs no network or key.

It speaks the OpenAI wire format, answered in-process by :mod:`sluice_proxy.upstream`,
so the embedded default and local tests exercise the whole request path.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import orjson

from .. import sse
from .base import JSON


def _last_user_text(body: JSON) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content: Any = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _ident(body: bytes) -> str:
    return "chatcmpl-mock-" + hashlib.sha256(body).hexdigest()[:12]


def reply_text(body: JSON) -> str:
    return f"echo: {_last_user_text(body)}"


def _prompt_tokens(body: JSON) -> int:
    return sum(_tokens(str(m.get("content") or "")) for m in body.get("messages") or [])


def chat_completion(raw: bytes) -> bytes:
    body = orjson.loads(raw)
    text = reply_text(body)
    prompt, completion = _prompt_tokens(body), _tokens(text)
    return orjson.dumps(
        {
            "id": _ident(raw),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "mock-echo"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    )


def chat_stream(raw: bytes) -> Iterator[bytes]:
    """The same reply as SSE: a role chunk, one chunk per word, finish, usage, [DONE]."""
    body = orjson.loads(raw)
    text = reply_text(body)
    base = {
        "id": _ident(raw),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "mock-echo"),
    }

    def chunk(delta: JSON, finish: str | None = None) -> bytes:
        return sse.encode(
            orjson.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )

    yield chunk({"role": "assistant", "content": ""})
    words = text.split(" ")
    for i, word in enumerate(words):
        yield chunk({"content": word if i == 0 else " " + word})
    yield chunk({}, "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt, completion = _prompt_tokens(body), _tokens(text)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        yield sse.encode(orjson.dumps({**base, "choices": [], "usage": usage}))
    yield b"data: [DONE]\n\n"


def embeddings(raw: bytes) -> bytes:
    body = orjson.loads(raw)
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    data = []
    for i, item in enumerate(items):
        digest = hashlib.sha256(str(item).encode()).digest()
        data.append({"object": "embedding", "index": i, "embedding": [b / 255 for b in digest[:8]]})
    tokens = sum(_tokens(str(item)) for item in items)
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": body.get("model", "mock-embed"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
