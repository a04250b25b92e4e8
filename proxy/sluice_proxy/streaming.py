"""Relay an upstream stream to the client: decode, re-encode, end cleanly or with an error event.

Plain events between an OpenAI upstream and an OpenAI client are spliced: handed from the
upstream connection's callback straight to the client's socket (:class:`_Splice`), so a long
stream wakes the relay loop only for what it must read (usage, the end, a split event).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import web

from .errors import GatewayError, UpstreamError
from .fallback import Opened
from .ingress import ChatCall, Ingress
from .providers import StreamDecoder, Usage
from .state import SERVER
from .tokens import estimate_prompt_tokens
from .upstream import UpstreamResponse

SPLICE_BUFFER = 64 * 1024
"""Bytes waiting in the client's socket buffer beyond which chunks go through the relay loop,
which waits for the client to read (and, its own buffer full, stops reading the upstream)."""
STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "Server": SERVER,
}


class _EventStream(web.StreamResponse):
    """Its headers go out with the first events, which are in hand when it starts: one write."""

    # aiohttp's own switch (web.Response turns it off too); were it renamed, one more write.
    _send_headers_immediately = False


class _Splice:
    """Forwards plain events from the upstream connection's callback straight to the client's socket.

    It does what the relay loop does with them (send the bytes as they came, as an HTTP chunk)
    without waking the loop: no future, task step or writer layers per chunk, which were most
    of a long stream's cost. Anything else (usage, the end, half an event, a client not keeping
    up) it declines, and that goes the loop's way.
    """

    __slots__ = ("_decoder", "_transport", "relayed", "stopped")

    def __init__(self, transport: asyncio.Transport, decoder: StreamDecoder) -> None:
        self._transport = transport
        self._decoder = decoder
        self.relayed = 0
        """Events forwarded."""
        self.stopped = False
        """Set before the response ends: nothing may follow its last chunk."""

    def __call__(self, data: bytes) -> bool:
        transport = self._transport
        if (
            self.stopped
            or transport.is_closing()
            or transport.get_write_buffer_size() > SPLICE_BUFFER
            or self._decoder.passthrough(data) != len(data)
        ):
            return False
        transport.write(b"%x\r\n%b\r\n" % (len(data), data))  # chunked framing, as aiohttp's writer
        self.relayed += data.count(b"\n\n")
        return True


def _splice(
    request: web.Request, response: web.StreamResponse, decoder: StreamDecoder, upstream: UpstreamResponse
) -> _Splice | None:
    """Divert ``upstream``'s plain events to the client directly, where the response allows it."""
    transport, headers = request.transport, response.headers
    if transport is None or headers.get("Transfer-Encoding") != "chunked" or "Content-Encoding" in headers:
        return None  # HTTP/1.0 (no chunks) or compressed: only the writer frames these
    splice = _Splice(transport, decoder)
    upstream.divert(splice)
    return splice


@dataclass(slots=True, init=False)  # its own __init__: see setup.py
class StreamOutcome:
    response: web.StreamResponse
    usage: Usage | None
    first_token_at: float | None
    """``time.perf_counter()`` when the first chunk reached the client."""
    error: GatewayError | None
    client_gone: bool
    usage_estimated: bool

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self.usage = None
        self.first_token_at = None
        self.error = None
        self.client_gone = False
        self.usage_estimated = False


async def relay(
    request: web.Request, opened: Opened, *, ingress: Ingress, call: ChatCall, headers: dict[str, str]
) -> StreamOutcome:
    """Stream ``opened`` to the client; never raises for failures after the first byte."""
    response = _EventStream(headers={**headers, **STREAM_HEADERS})
    target = opened.backend.target
    decoder = opened.backend.adapter.stream_decoder(target, include_usage=call.include_usage)
    encoder = ingress.stream_encoder(model=call.model, include_usage=call.include_usage)
    upstream = opened.response
    outcome = StreamOutcome(response)
    relayed = 0
    data = opened.first
    # OpenAI upstream to OpenAI client: plain events are forwarded as the bytes that came,
    # and only the rest (usage, the end, an event split across reads) is decoded.
    forward = ingress.speaks_openai
    splice: _Splice | None = None
    held = b""  # the read that ends the stream goes out with the end: one write, not three
    try:
        writer = await response.prepare(request)  # in the try: a client gone already is handled below
        assert writer is not None
        try:
            while data:
                cut = decoder.passthrough(data) if forward else 0
                out, rest = data[:cut], data[cut:]
                relayed += out.count(b"\n\n")
                if rest:
                    chunks = decoder.feed(rest)
                    relayed += len(chunks)
                    out = b"".join([out, *[encoder.chunk(c) for c in chunks]])
                if decoder.done:
                    held = out
                    break
                if out:
                    await response.write(out)
                    if outcome.first_token_at is None:
                        outcome.first_token_at = time.perf_counter()
                        if forward:  # the headers are out: later plain events may skip the loop
                            splice = _splice(request, response, decoder, upstream)
                else:
                    writer.send_headers()  # nothing to relay yet: the client has the headers meanwhile
                data = await upstream.read_chunk()
            else:
                held = b"".join([encoder.chunk(c) for c in decoder.finish()])
            if not decoder.done:
                raise UpstreamError(
                    f"provider '{target.provider}' ended the stream before it was complete", reason=None
                )
            outcome.usage = decoder.usage
            end = held + encoder.finish(decoder.usage)
        except GatewayError as error:
            outcome.error = error
            outcome.usage = decoder.usage
            end = held + encoder.error(error)
        if splice is not None:
            splice.stopped = True  # whatever the upstream still sends stays behind the end
        await response.write_eof(end)
        if outcome.first_token_at is None and held:
            outcome.first_token_at = time.perf_counter()
    except ConnectionResetError:
        # The client went away: closing the upstream response below cancels the upstream request.
        outcome.client_gone = True
        outcome.usage = decoder.usage
    finally:
        upstream.close()
    if splice is not None:
        relayed += splice.relayed
    if outcome.usage is None:
        # The provider never reported usage (client gone, stream broken): charge an estimate
        # rather than nothing. Providers stream about one token per chunk.
        outcome.usage = Usage(input_tokens=estimate_prompt_tokens(call.body), output_tokens=relayed)
        outcome.usage_estimated = True
    return outcome
