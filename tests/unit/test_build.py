"""Which build of the proxy runs: interpreted from the source tree, or the wheel compiled by mypyc.

scripts/test runs the suite on both; its compiled pass sets SLUICE_EXPECT_COMPILED=1, and these
tests make sure that pass really ran the compiled modules, and all the modules setup.py compiles.
"""

from __future__ import annotations

import importlib.util
import os
import pkgutil
import subprocess
import sys
from importlib import import_module
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

import sluice_proxy
from sluice_proxy import build, metrics

ROOT = Path(__file__).resolve().parents[2]
EXPECT_COMPILED = os.environ.get("SLUICE_EXPECT_COMPILED") == "1"


def setup_py() -> ModuleType:
    """setup.py as a module, without running the build."""
    spec = importlib.util.spec_from_file_location("sluice_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_version_names_the_build() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "sluice_proxy", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert (
        printed.strip()
        == f"sluice-proxy {build.VERSION} ({'compiled' if EXPECT_COMPILED else 'interpreted'})"
    )


def test_the_build_info_metric_names_the_build() -> None:
    assert (
        b'sluice_build_info{compiled="%s",version="%s"} 1.0'
        % (
            str(EXPECT_COMPILED).lower().encode(),
            build.VERSION.encode(),
        )
        in metrics.exposition()
    )


def test_every_module_runs_as_this_pass_expects() -> None:
    """Compiled pass: each module setup.py compiles is an extension, the others are Python."""
    interpreted = setup_py().interpreted
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
        assert is_extension is (EXPECT_COMPILED and not interpreted(source)), name


def test_every_module_left_interpreted_exists() -> None:
    package = ROOT / "proxy" / "sluice_proxy"
    assert [name for name in setup_py().INTERPRETED if not (package / name).exists()] == []
