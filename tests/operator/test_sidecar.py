"""plan(): the native-sidecar injection, exactly once."""

from __future__ import annotations

from typing import Any

from sluice_operator.settings import SidecarSettings
from sluice_operator.sidecar import CONTAINER, plan

SETTINGS = SidecarSettings(
    image="example/sluice-proxy:1", port=4100, resources={"limits": {"memory": "128Mi"}}
)


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "app", "labels": {"sluice.dev/inject": "true"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}], **spec},
    }


def apply(p: dict[str, Any]) -> dict[str, Any]:
    m = plan(p, SETTINGS)
    assert m is not None
    spec = {
        **p["spec"],
        "initContainers": m.init_containers,
        "containers": m.containers,
        "volumes": m.volumes,
    }
    return {"metadata": {**p["metadata"], "labels": m.labels}, "spec": spec}


def test_adds_a_native_sidecar_first_with_startup_probe_and_mounts() -> None:
    out = apply(pod(initContainers=[{"name": "migrate", "image": "m"}]))
    first, second = out["spec"]["initContainers"]
    assert first["name"] == CONTAINER and second["name"] == "migrate"
    assert first["restartPolicy"] == "Always"
    assert first["image"] == "example/sluice-proxy:1"
    assert first["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert first["startupProbe"]["httpGet"]["port"] == 4100
    assert "--port=4100" in first["args"] and "--config=/etc/sluice/config/sluice.yaml" in first["args"]
    assert first["resources"] == {"limits": {"memory": "128Mi"}}
    mounts = {m["mountPath"]: m["name"] for m in first["volumeMounts"]}
    volumes = {v["name"]: v for v in out["spec"]["volumes"]}
    assert volumes[mounts["/etc/sluice/config"]]["configMap"]["name"] == "sluice-config"
    assert volumes[mounts["/etc/sluice/credentials"]]["secret"]["secretName"] == "sluice-credentials"
    assert out["metadata"]["labels"]["sluice.dev/proxy"] == "true"


def test_points_the_sdks_at_the_sidecar_unless_already_set() -> None:
    app = {"name": "app", "image": "a", "env": [{"name": "OPENAI_BASE_URL", "value": "https://mine/v1"}]}
    out = apply(pod(containers=[app, {"name": "other", "image": "b"}]))
    envs = [{e["name"]: e["value"] for e in c["env"]} for c in out["spec"]["containers"]]
    assert envs[0] == {"OPENAI_BASE_URL": "https://mine/v1", "ANTHROPIC_BASE_URL": "http://127.0.0.1:4100"}
    assert envs[1] == {
        "OPENAI_BASE_URL": "http://127.0.0.1:4100/v1",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:4100",
    }


def test_injecting_twice_is_a_no_op() -> None:
    once = apply(pod())
    assert plan(once, SETTINGS) is None


def test_input_pod_is_not_modified() -> None:
    original = pod()
    snapshot = repr(original)
    apply(original)
    assert repr(original) == snapshot
