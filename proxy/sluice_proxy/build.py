"""What this proxy is: its version, and whether it runs compiled by mypyc or interpreted."""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from importlib.metadata import PackageNotFoundError, version
from typing import Final


def _version() -> str:
    try:
        return version("sluice")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


VERSION: Final[str] = _version()
COMPILED: Final[bool] = __file__.endswith(tuple(EXTENSION_SUFFIXES))
"""True when this module, and with it the rest of the hot path, is a mypyc extension (setup.py)."""
