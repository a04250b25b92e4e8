"""Token estimates for when a provider's own count is not available (yet).

Used to admit requests against token limits before the provider has answered, and to
charge a stream the client abandoned before the provider reported usage. The provider's
reported usage always replaces an estimate when it arrives.
"""

from __future__ import annotations

from typing import Any

# ~4 characters per token for English text with the common BPE tokenizers.
CHARS_PER_TOKEN = 4
# Per-message framing tokens in OpenAI's chat format.
MESSAGE_OVERHEAD = 4


def _text_length(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(_text_length(part.get("text")) for part in content if isinstance(part, dict))
    return 0


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of an OpenAI-shaped chat request, estimated from its text."""
    messages = body.get("messages") or []
    chars = sum(_text_length(m.get("content")) for m in messages if isinstance(m, dict))
    return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD * len(messages)
