"""The OpenAI stream decoder: which upstream bytes may be forwarded to an OpenAI client untouched."""

from __future__ import annotations

from sluice_proxy.providers.openai import OpenAIStreamDecoder

PLAIN = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'


def test_whole_plain_events_pass_as_they_are() -> None:
    decoder = OpenAIStreamDecoder(include_usage=False)
    assert decoder.openai_frames(PLAIN * 3) == PLAIN * 3
    assert decoder.usage is None and not decoder.done


def test_usage_the_end_and_split_events_are_decoded() -> None:
    decoder = OpenAIStreamDecoder(include_usage=False)
    assert decoder.openai_frames(PLAIN + USAGE) is None, "usage must be read (and maybe dropped)"
    assert decoder.openai_frames(b"data: [DONE]\n\n") is None, "the end must be seen"
    assert decoder.openai_frames(PLAIN[:20]) is None, "half an event"
    assert decoder.openai_frames(PLAIN.replace(b"\n", b"\r\n")) is None, "CRLF framing is normalised"
    # Once half an event waits in the decoder, what follows must complete it there.
    assert decoder.feed(PLAIN[:20]) == []
    assert decoder.openai_frames(PLAIN[20:]) is None
    assert decoder.feed(PLAIN[20:]) == [PLAIN[6:-2]]
    assert decoder.openai_frames(PLAIN) == PLAIN
