"""The images' build rules, read from the Dockerfile (no Docker engine needed)."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.chart.manifests import ROOT

UID = "10001"


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name → its (INSTRUCTION, arguments) lines, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            current = result.setdefault(arguments.split(" AS ")[-1].strip(), [])
        current.append((instruction.upper(), arguments.strip()))
    return result


def test_builds_from_slim_python_311() -> None:
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", (ROOT / "Dockerfile").read_text(), re.M)
    assert stages()["builder"][0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert stages()["runtime"][0] == ("FROM", "${PYTHON_IMAGE} AS runtime")


@pytest.mark.parametrize(("stage", "script"), [("proxy", "sluice-proxy"), ("operator", "sluice-operator")])
def test_image_runs_its_console_script_as_uid_10001(stage: str, script: str) -> None:
    lines = stages()[stage]
    assert lines[0] == ("FROM", f"runtime AS {stage}")
    users = [args for instruction, args in lines if instruction == "USER"]
    assert users == [f"{UID}:{UID}"]
    last_run = max(i for i, (instruction, _) in enumerate(lines) if instruction == "RUN")
    assert lines.index(("USER", users[0])) > last_run, "USER must come after the last RUN"
    assert ("ENTRYPOINT", f'["{script}"]') in lines
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert script in scripts


@pytest.mark.parametrize("stage", ["proxy", "operator"])
def test_only_wheels_reach_the_final_image(stage: str) -> None:
    lines = stages()[stage]
    assert not [args for instruction, args in lines if instruction in {"COPY", "ADD"}]
    (install,) = [args for instruction, args in lines if instruction == "RUN"]
    assert "--mount=type=bind,from=builder" in install and "--no-index" in install
    assert "pip uninstall --yes pip setuptools wheel" in install


def test_runtime_is_unbuffered_and_unprivileged() -> None:
    runtime = dict(stages()["runtime"])
    assert "PYTHONUNBUFFERED=1" in runtime["ENV"]
    assert f"--uid {UID}" in runtime["RUN"] and f"--gid {UID}" in runtime["RUN"]


def test_proxy_healthcheck_probes_healthz() -> None:
    (check,) = [args for instruction, args in stages()["proxy"] if instruction == "HEALTHCHECK"]
    assert "/healthz" in check


def test_build_context_carries_what_the_builder_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        path
        for instruction, args in stages()["builder"]
        if instruction == "COPY"
        for path in args.split()[:-1]
    }
    assert copied <= allowed, f"{sorted(copied - allowed)} are excluded by .dockerignore"
    assert "*" in (ROOT / ".dockerignore").read_text().splitlines(), "deny by default so no secret is sent"


def test_the_sluice_wheel_is_compiled_in_the_builder_and_no_compiler_reaches_an_image() -> None:
    builder = " ".join(args for instruction, args in stages()["builder"] if instruction == "RUN")
    assert "SLUICE_COMPILE=1 pip wheel --no-build-isolation" in builder
    assert "gcc" in builder and "mypy==" in builder
    for stage in ("runtime", "proxy", "operator"):
        runs = " ".join(args for instruction, args in stages()[stage] if instruction == "RUN")
        assert "gcc" not in runs and "mypy" not in runs and "apt-get" not in runs, stage
