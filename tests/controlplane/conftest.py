"""Fixtures for tests against a real kube-apiserver + etcd with the Sluice CRDs installed."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane.harness import ControlPlane, control_plane_binaries, running_control_plane

HERE = Path(__file__).parent
BINARIES = pytest.StashKey[Path]()
STARTUP = pytest.StashKey[float]()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory needs the control plane, whether or not its module says so."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.controlplane)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Locate (or build) the binaries before the first test, outside the per-test timeout."""
    if any(item.get_closest_marker("controlplane") for item in session.items):
        session.config.stash[BINARIES] = control_plane_binaries()


@pytest.fixture(scope="session")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[ControlPlane]:
    """One control plane for the whole session; tests isolate themselves by namespace."""
    binaries = pytestconfig.stash.get(BINARIES, None) or control_plane_binaries()
    with running_control_plane(binaries, tmp_path_factory.mktemp("control-plane")) as plane:
        pytestconfig.stash[STARTUP] = plane.startup_seconds
        yield plane


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Say how long the control plane took to start, so CI logs track it."""
    if STARTUP in config.stash:
        terminalreporter.write_line(
            f"control plane (etcd + kube-apiserver + CRDs) ready in {config.stash[STARTUP]:.2f}s"
        )


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (without waiting) afterwards."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:48].strip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", name, check=True)
    yield name
    # No namespace controller runs here, so the namespace would stay Terminating with its
    # objects inside; delete the Sluice objects explicitly so later operator runs don't see them.
    control_plane.kubectl(
        "delete", "providersecrets,airoutes,aitenants", "--all", "-n", name, "--wait=false", check=True
    )
    control_plane.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=True)
