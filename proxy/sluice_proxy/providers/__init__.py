"""Upstream wire formats, one module per format; vendors sharing a format are config entries."""

from ..config.schema import ProviderType
from .anthropic import AnthropicAdapter
from .base import Adapter, Chunk, StreamDecoder, Target, UpstreamRequest, Usage
from .gemini import GeminiAdapter
from .ollama import OllamaAdapter
from .openai import OpenAIAdapter

_OPENAI = OpenAIAdapter()

ADAPTERS: dict[ProviderType, Adapter] = {
    ProviderType.OPENAI: _OPENAI,
    ProviderType.AZURE_OPENAI: _OPENAI,
    ProviderType.MOCK: _OPENAI,
    ProviderType.ANTHROPIC: AnthropicAdapter(),
    ProviderType.GEMINI: GeminiAdapter(),
    ProviderType.OLLAMA: OllamaAdapter(),
}

__all__ = ["ADAPTERS", "Adapter", "Chunk", "StreamDecoder", "Target", "UpstreamRequest", "Usage"]
