"""Every example applies cleanly: valid objects, and the operator's own renderer accepts all of it.

Each example is rendered with `sluice_operator.render` (the pure function the operator runs) and
compiled by the proxy, so an example can only use fields and references both really understand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from sluice_operator.api import CREDENTIALS_DIR, KINDS, TENANTS
from sluice_operator.render import Resource, Snapshot, render
from sluice_proxy.config import SecretRef, SluiceConfig
from sluice_proxy.runtime import compile_config
from tests.chart.manifests import ROOT, validate

EXAMPLES = ROOT / "examples"
NUMBERED = sorted(path for path in EXAMPLES.iterdir() if path.is_dir())
PLURALS = {kind: plural for plural, kind in KINDS.items()}
# Examples that build on another one in the same namespace.
NEEDS = {"02-team-tenant-limits-budget": ["01-openai-with-anthropic-fallback"]}
DEFAULT_NAMESPACE = "sluice-system"


def documents(*directories: Path) -> Iterator[dict[str, Any]]:
    for directory in directories:
        for path in sorted(directory.glob("*.yaml")):
            yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def snapshots(example: Path) -> Iterator[Snapshot]:
    """One Snapshot per namespace the example (with the examples it needs) writes to."""
    directories = [EXAMPLES / name for name in NEEDS.get(example.name, [])] + [example]
    by_namespace: dict[str, tuple[list[Resource], dict[str, dict[str, bytes]]]] = {}
    for doc in documents(*directories):
        namespace = doc["metadata"].get("namespace", DEFAULT_NAMESPACE)
        resources, secrets = by_namespace.setdefault(namespace, ([], {}))
        if doc["kind"] in PLURALS:
            resources.append(
                Resource(plural=PLURALS[doc["kind"]], name=doc["metadata"]["name"], spec=doc["spec"])
            )
        elif doc["kind"] == "Secret":
            secrets[doc["metadata"]["name"]] = {k: v.encode() for k, v in doc.get("stringData", {}).items()}
    for namespace, (resources, secrets) in by_namespace.items():
        if resources:
            yield Snapshot(
                namespace=namespace, resources=resources, secrets=secrets, redis_url="redis://redis:6379/0"
            )


def test_examples_are_numbered_and_explained() -> None:
    names = [path.name for path in NUMBERED]
    assert names[:6] == [
        "00-quickstart-mock",
        "01-openai-with-anthropic-fallback",
        "02-team-tenant-limits-budget",
        "03-sidecar-app",
        "04-azure-openai",
        "05-self-hosted-vllm-ollama",
    ]
    index = (EXAMPLES / "README.md").read_text()
    for path in NUMBERED:
        assert (path / "README.md").read_text().startswith("# "), path.name
        assert list(path.glob("*.yaml")), path.name
        assert f"[{path.name}]({path.name}/)" in index, f"examples/README.md does not list {path.name}"


@pytest.mark.parametrize("example", NUMBERED, ids=[path.name for path in NUMBERED])
def test_example_objects_are_valid(example: Path) -> None:
    for doc in documents(example):
        validate(doc)


@pytest.mark.parametrize("example", NUMBERED, ids=[path.name for path in NUMBERED])
def test_operator_renders_every_resource_ready(example: Path, tmp_path: Path) -> None:
    for snapshot in snapshots(example):
        rendering = render(snapshot)
        # A tenant whose key Secret is absent gets a generated key; render again as the operator does.
        generated = {
            missing.secret: {missing.key or "key": f"sk-sluice-generated-{missing.secret}".encode()}
            for missing in rendering.missing_key_secrets
        }
        if generated:
            snapshot = Snapshot(
                namespace=snapshot.namespace,
                resources=snapshot.resources,
                secrets={**snapshot.secrets, **generated},
                redis_url=snapshot.redis_url,
            )
            rendering = render(snapshot)
        not_ready = {key: verdict for key, verdict in rendering.verdicts.items() if not verdict.ready}
        assert not not_ready, f"{example.name} in {snapshot.namespace}: {not_ready}"
        tenants = {name for plural, name in rendering.verdicts if plural == TENANTS}
        assert {tenant.name for tenant in rendering.config.tenants} == tenants
        mounted = mount_credentials(rendering.config, rendering.credentials, tmp_path / snapshot.namespace)
        compile_config(mounted)  # the proxy accepts what the operator would publish


def mount_credentials(config: SluiceConfig, credentials: dict[str, bytes], directory: Path) -> SluiceConfig:
    """Project the credentials Secret into `directory` as the kubelet would, and point the config there."""
    directory.mkdir(parents=True)
    for name, value in credentials.items():
        (directory / name).write_bytes(value)
    providers = []
    for provider in config.providers:
        if provider.api_key is not None and provider.api_key.file is not None:
            assert provider.api_key.file.startswith(f"{CREDENTIALS_DIR}/"), provider.api_key.file
            moved = SecretRef(file=str(directory / provider.api_key.file.removeprefix(f"{CREDENTIALS_DIR}/")))
            provider = msgspec.structs.replace(provider, api_key=moved)
        providers.append(provider)
    return msgspec.structs.replace(config, providers=providers)
