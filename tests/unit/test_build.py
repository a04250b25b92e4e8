"""Which build of the proxy runs: interpreted from the source tree, or the wheel compiled by mypyc.

scripts/test runs the suite on both; its compiled pass sets SLUICE_EXPECT_COMPILED=1, and these
tests make sure that pass really ran the compiled modules, and all the modules setup.py compiles.
"""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from importlib import import_module
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import sluice_proxy
from sluice_proxy import build

ROOT = Path(__file__).resolve().parents[2]
EXPECT_COMPILED = os.environ.get("SLUICE_EXPECT_COMPILED") == "1"


def interpreted_by_design() -> set[str]:
    """``INTERPRETED`` of setup.py, read without running the build."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    (value,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["INTERPRETED"]
    ]
    return set(ast.literal_eval(value))


def test_version_names_the_build() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "sluice_proxy", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert (
        printed.strip()
        == f"sluice-proxy {build.VERSION} ({'compiled' if EXPECT_COMPILED else 'interpreted'})"
    )


def test_every_module_runs_as_this_pass_expects() -> None:
    """Compiled pass: each module setup.py compiles is an extension, the others are Python."""
    interpreted = interpreted_by_design()
    assert build.COMPILED is EXPECT_COMPILED
    every = pkgutil.walk_packages(sluice_proxy.__path__, "sluice_proxy.")
    modules = [info.name for info in every if not info.name.endswith("__main__")]  # importing it runs it
    assert len(modules) > 40
    for name in modules:
        module = import_module(name)
        path = Path(module.__file__ or "")
        is_extension = path.name.endswith(tuple(EXTENSION_SUFFIXES))
        relative = name.removeprefix("sluice_proxy.").replace(".", "/")
        source = f"{relative}/__init__.py" if path.stem.startswith("__init__") else f"{relative}.py"
        assert is_extension is (EXPECT_COMPILED and source not in interpreted), name


def test_every_module_left_interpreted_exists() -> None:
    package = ROOT / "proxy" / "sluice_proxy"
    assert [name for name in interpreted_by_design() if not (package / name).is_file()] == []
