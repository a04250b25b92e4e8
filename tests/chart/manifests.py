"""Offline validation of rendered manifests and the walks the chart tests share.

Built-in kinds are checked by kubernetes-validate in strict mode (unknown fields are errors).
Custom kinds are checked against the CRD the chart ships, or, for CRDs of other projects
(prometheus-operator, cert-manager), against a schema of the fields this chart uses.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sluice"

KUBERNETES_VERSION = "1.29.0"  # the chart's kubeVersion floor; newer schemas are supersets here

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"}},
}


def _custom(spec: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": required,
                "properties": spec,
            },
        },
    }


_ISSUER_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
        "group": {"const": "cert-manager.io"},
    },
}
FOREIGN_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _custom(
        {
            "selector": {"type": "object", "properties": {"matchLabels": _STRING_MAP}},
            "namespaceSelector": {
                "type": "object",
                "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
            },
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string"},
                        "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                    },
                },
            },
        },
        ["selector", "endpoints"],
    ),
    ("cert-manager.io/v1", "Certificate"): _custom(
        {
            "secretName": {"type": "string"},
            "duration": {"type": "string", "pattern": "^[0-9]+h$"},
            "dnsNames": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "issuerRef": _ISSUER_REF,
        },
        ["secretName", "issuerRef", "dnsNames"],
    ),
    ("cert-manager.io/v1", "Issuer"): _custom({"selfSigned": {"type": "object"}}, ["selfSigned"]),
}


@functools.cache
def _chart_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → openAPIV3Schema of every CRD in charts/sluice/crds/."""
    schemas = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = _without_kubernetes_extensions(version["schema"]["openAPIV3Schema"])
    return schemas


def _without_kubernetes_extensions(node: Any) -> Any:
    """jsonschema does not know the x-kubernetes-* keywords (CEL, list types); drop them."""
    if isinstance(node, dict):
        return {
            k: _without_kubernetes_extensions(v) for k, v in node.items() if not k.startswith("x-kubernetes")
        }
    if isinstance(node, list):
        return [_without_kubernetes_extensions(item) for item in node]
    return node


def validate(doc: dict[str, Any]) -> None:
    """Raise with the document's kind/name and the failing path when `doc` is not a valid object."""
    key = (doc["apiVersion"], doc["kind"])
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    custom = FOREIGN_SCHEMAS.get(key) or _chart_crd_schemas().get(key)
    if (
        custom is None
        and "." in doc["apiVersion"].split("/")[0]
        and not doc["apiVersion"].endswith(".k8s.io/v1")
    ):
        raise AssertionError(f"{where}: no CRD for {key} in charts/sluice/crds/ (run scripts/sync-crds.sh)")
    try:
        if custom is not None:
            jsonschema.Draft4Validator(custom).validate(doc)
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
        raise AssertionError(f"{where} is invalid: {error}") from error


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) for every workload the chart renders."""
    for doc in docs:
        if doc["kind"] == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]
        elif doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def find(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> list[dict[str, Any]]:
    """Documents of `kind` whose name ends with `suffix`."""
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = find(docs, kind, suffix)
    assert len(found) == 1, (
        f"expected one {kind} named *{suffix}, found {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


def container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def env_of(container_spec: dict[str, Any]) -> dict[str, str]:
    """Plain-value environment variables of a container (valueFrom entries are left out)."""
    return {e["name"]: e["value"] for e in container_spec.get("env", []) if "value" in e}
