"""Client wire formats: how requests arrive and how answers leave."""

from .anthropic import AnthropicIngress
from .base import ChatCall, Ingress, StreamEncoder
from .openai import OpenAIIngress

OPENAI: Ingress = OpenAIIngress()
ANTHROPIC: Ingress = AnthropicIngress()

# Path prefix → the ingress whose error shape answers there; OpenAI's is the default.
_BY_PREFIX: dict[str, Ingress] = {"/v1/messages": ANTHROPIC}


def for_path(path: str) -> Ingress:
    for prefix, ingress in _BY_PREFIX.items():
        if path.startswith(prefix):
            return ingress
    return OPENAI


__all__ = ["ANTHROPIC", "OPENAI", "ChatCall", "Ingress", "StreamEncoder", "for_path"]
