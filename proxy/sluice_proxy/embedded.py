"""The embedded default configuration: mock echo everywhere, plus real providers whose keys are set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from . import config
from .config.codec import default_text

LOCAL_DEV_KEY = "sk-sluice-local-dev"

# env var → (provider name, type, model patterns it serves)
_PROVIDERS_FROM_ENV = (
    ("OPENAI_API_KEY", "openai", "openai", ("gpt-*", "o1*", "o3*", "o4*", "text-embedding-*")),
    ("ANTHROPIC_API_KEY", "anthropic", "anthropic", ("claude-*",)),
    ("GEMINI_API_KEY", "gemini", "gemini", ("gemini-*",)),
)


def embedded_config(environ: Mapping[str, str]) -> config.SluiceConfig:
    data: dict[str, Any] = yaml.safe_load(default_text())
    extra_routes = []
    for env, name, kind, patterns in _PROVIDERS_FROM_ENV:
        if environ.get(env):
            data["providers"].append({"name": name, "type": kind, "apiKey": {"value": environ[env]}})
            extra_routes += [{"model": p, "backends": [{"provider": name, "model": "*"}]} for p in patterns]
    # Specific patterns first: the catch-all mock route stays last.
    data["routes"] = [data["routes"][0], *extra_routes, *data["routes"][1:]]
    return config.decode(data, "embedded default")
