"""SSE framing: events survive arbitrary splits, CRLF, comments and multi-line data."""

from __future__ import annotations

from sluice_proxy import sse
from sluice_proxy.providers.openai import OpenAIStreamDecoder

STREAM = (
    b': keep-alive\r\n\r\nevent: message_start\r\ndata: {"a": 1}\r\n\r\n'
    b"data: line1\ndata: line2\n\ndata: [DONE]\n\n"
)


def parse_all(pieces: list[bytes]) -> list[sse.Event]:
    parser = sse.SSEParser()
    events = [e for piece in pieces for e in parser.feed(piece)]
    return events + parser.finish()


def test_parsing_is_independent_of_how_bytes_are_split() -> None:
    whole = parse_all([STREAM])
    one_by_one = parse_all([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert whole == one_by_one
    assert [(e.event, e.data) for e in whole] == [
        ("message_start", b'{"a": 1}'),
        (None, b"line1\nline2"),
        (None, b"[DONE]"),
    ]


def test_trailing_event_without_blank_line_is_kept() -> None:
    assert parse_all([b"data: tail"]) == [sse.Event(b"tail")]


def test_openai_decoder_passes_chunks_through_and_takes_usage() -> None:
    decoder = OpenAIStreamDecoder(include_usage=False)
    body = (
        b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
        b"data: [DONE]\n\n"
    )
    chunks = [c for i in range(len(body)) for c in decoder.feed(body[i : i + 1])]
    assert chunks == [b'{"choices":[{"delta":{"content":"hi"}}],"usage":null}']
    assert decoder.done and decoder.usage is not None and decoder.usage.output_tokens == 2
