"""Recorded wire fixtures (tests/fixtures/wire) and a driver that feeds streams in awkward slices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from sluice_proxy.config.schema import ProviderType
from sluice_proxy.providers.base import JSON, Chunk, StreamDecoder, Target

WIRE = Path(__file__).resolve().parents[2] / "fixtures" / "wire"
# Whole, one byte at a time, and a size that splits UTF-8 sequences and CRLF pairs.
SLICE_SIZES = (None, 1, 7)


def raw(name: str) -> bytes:
    return (WIRE / name).read_bytes()


def load(name: str) -> Any:
    return orjson.loads(raw(name))


def target(kind: ProviderType, model: str, base_url: str = "http://upstream.test", **extra: Any) -> Target:
    return Target(provider=f"{kind}-main", type=kind, base_url=base_url, model=model, **extra)


def decode(decoder: StreamDecoder, data: bytes, size: int | None) -> list[JSON]:
    """Feed ``data`` in slices of ``size`` bytes (all at once for None); chunks as dicts."""
    pieces = [data] if size is None else [data[i : i + size] for i in range(0, len(data), size)]
    chunks: list[Chunk] = []
    for piece in pieces:
        chunks.extend(decoder.feed(piece))
    chunks.extend(decoder.finish())
    return [orjson.loads(c) if isinstance(c, bytes) else c for c in chunks]


def text_of(chunks: list[JSON]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def tool_calls_of(chunks: list[JSON]) -> dict[int, JSON]:
    """Streamed tool-call deltas assembled the way OpenAI clients do: by index."""
    calls: dict[int, JSON] = {}
    for chunk in chunks:
        for delta in (chunk["choices"][0]["delta"].get("tool_calls") or []) if chunk["choices"] else []:
            call = calls.setdefault(delta["index"], {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.get("id") or call["id"]
            function = delta.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""
    return calls


def finish_reasons(chunks: list[JSON]) -> list[str]:
    return [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
