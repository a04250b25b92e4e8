"""Build hook: with ``SLUICE_COMPILE=1`` the proxy's modules are compiled to C extensions by mypyc.

The project's metadata lives in pyproject.toml; this file only adds the extensions. The same
typed source runs either way: interpreted (the default, and what an editable install runs) or
compiled, which the container image ships and ``bench/`` measures. Compiling needs a C
compiler, the Python headers and mypy, and runs without build isolation so that it uses the
mypy already installed:

    SLUICE_COMPILE=1 pip wheel --no-build-isolation --no-deps .

Dataclasses made per request (``RequestContext``, ``Usage``, ``Settlement``…) say ``init=False``
and write their own ``__init__``: compiled, that one is native code, while the ``__init__``
dataclass generates stays interpreted, about six times slower (80 against 450 ns).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from setuptools import setup

PACKAGE = Path("proxy/sluice_proxy")
INTERPRETED = {
    "__main__.py": "run as a script",
    "cli.py": "start-up only",
    "app.py": "mypyc does not compile async generators (aiohttp cleanup contexts)",
    "reload.py": "async generators",
    "limits/context.py": "async generators",
    "config/": "msgspec Struct classes must stay Python classes; the rest as runtime.py",
    "runtime.py": "a reload compiles the config in a thread: compiled code never hands the GIL over "
    "by itself, interpreted code does every switch interval, so requests would wait out the compile",
    "errors.py": "subclasses override class attributes (status, type, code); compiled, they would not",
}
"""The modules (a folder: all of its modules) left interpreted, and why; the proxy's others are compiled."""


def compiled_modules() -> list[str]:
    sources = sorted(PACKAGE.rglob("*.py"))
    return [str(path) for path in sources if not interpreted(path.relative_to(PACKAGE).as_posix())]


def interpreted(module: str) -> bool:
    """Whether ``module`` (a path inside the package) stays interpreted."""
    return module in INTERPRETED or any(
        module.startswith(folder) for folder in INTERPRETED if folder.endswith("/")
    )


def extensions() -> dict[str, Any]:
    if os.environ.get("SLUICE_COMPILE") != "1":
        return {}
    try:
        from mypyc.build import mypycify
    except ImportError as error:
        raise SystemExit(
            "SLUICE_COMPILE=1 needs mypy in the build environment: "
            "pip install mypy, then build with --no-build-isolation"
        ) from error
    return {
        "ext_modules": mypycify(
            compiled_modules(), opt_level="3", debug_level="0", multi_file=True, group_name="sluice"
        ),
        "options": {"build_ext": {"parallel": os.cpu_count() or 1}},
    }


if __name__ == "__main__":  # how setuptools runs this file; tests import it for INTERPRETED
    setup(**extensions())
