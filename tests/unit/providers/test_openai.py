"""The OpenAI stream decoder: which upstream bytes may be forwarded to an OpenAI client untouched."""

from __future__ import annotations

from sluice_proxy.providers.openai import OpenAIStreamDecoder

PLAIN = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'


def test_whole_plain_events_pass_as_they_are() -> None:
    decoder = OpenAIStreamDecoder(include_usage=False)
    assert decoder.passthrough(PLAIN * 3) == len(PLAIN) * 3
    assert decoder.usage is None and not decoder.done


def test_usage_the_end_and_split_events_are_decoded() -> None:
    decoder = OpenAIStreamDecoder(include_usage=False)
    assert decoder.passthrough(USAGE) == 0, "usage must be read (and maybe dropped)"
    assert decoder.passthrough(b"data: [DONE]\n\n") == 0, "the end must be seen"
    assert decoder.passthrough(PLAIN[:20]) == 0, "half an event"
    assert decoder.passthrough(PLAIN.replace(b"\n", b"\r\n")) == 0, "CRLF framing is normalised"
    # Once half an event waits in the decoder, what follows must complete it there.
    assert decoder.feed(PLAIN[:20]) == []
    assert decoder.passthrough(PLAIN[20:]) == 0
    assert decoder.feed(PLAIN[20:]) == [PLAIN[6:-2]]
    assert decoder.passthrough(PLAIN) == len(PLAIN)


def test_the_events_before_usage_the_end_or_a_split_event_pass_as_they_are() -> None:
    """A read holding a whole answer (a fast upstream) forwards all but its last events untouched."""
    decoder = OpenAIStreamDecoder(include_usage=False)
    assert decoder.passthrough(PLAIN * 2 + USAGE + b"data: [DONE]\n\n") == len(PLAIN) * 2
    assert decoder.passthrough(PLAIN * 2 + b"data: [DONE]\n\n") == len(PLAIN) * 2
    assert decoder.passthrough(PLAIN * 2 + PLAIN[:20]) == len(PLAIN) * 2
    assert decoder.usage is None and not decoder.done
