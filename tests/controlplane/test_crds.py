"""The sluice.dev CRDs against a real kube-apiserver: validation, CEL, defaults, status, printing.

The table of cases lives in ``cases/<kind>/{valid,invalid}_*.yaml``; each invalid case opens with
``# expect: <substring of the API server's error message>``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
import yaml

from sluice_operator.api import AITenantSpec, ProviderSecretSpec
from sluice_proxy.config import schema
from sluice_proxy.config.schema import Route
from tests.controlplane.harness import CRD_DIR, ControlPlane

pytestmark = pytest.mark.controlplane

CASES = Path(__file__).parent / "cases"
GROUP_VERSION = "/apis/sluice.dev/v1alpha1"
PLURALS = {"ProviderSecret": "providersecrets", "AIRoute": "airoutes", "AITenant": "aitenants"}


def _crd(kind: str) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load((CRD_DIR / f"{kind.lower()}.yaml").read_text())
    return crd


def _root(kind: str) -> dict[str, Any]:
    root: dict[str, Any] = _crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def _case_ids(prefix: str) -> list[Path]:
    return sorted(CASES.glob(f"*/{prefix}_*.yaml"))


def _expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path}: the first line must be '# expect: <error substring>'"
    return first.removeprefix("# expect: ")


def _contains(stored: Any, given: Any, path: str = "spec") -> None:
    """Every field the case sets survives storage unchanged (nothing pruned or rewritten)."""
    if isinstance(given, dict):
        assert isinstance(stored, dict), path
        for key, value in given.items():
            assert key in stored, f"{path}.{key} was pruned by the API server"
            _contains(stored[key], value, f"{path}.{key}")
    elif isinstance(given, list):
        assert isinstance(stored, list) and len(stored) == len(given), path
        for index, (s, g) in enumerate(zip(stored, given, strict=True)):
            _contains(s, g, f"{path}[{index}]")
    else:
        assert stored == given, f"{path}: stored {stored!r}, sent {given!r}"


@pytest.fixture(scope="module")
def case_namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"crd-cases-{secrets.token_hex(3)}"
    status, body = control_plane.api("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    yield name
    control_plane.api("DELETE", f"/api/v1/namespaces/{name}")


def _create(plane: ControlPlane, namespace: str, document: dict[str, Any], dry_run: bool) -> tuple[int, Any]:
    query = "?fieldValidation=Strict" + ("&dryRun=All" if dry_run else "")
    path = f"{GROUP_VERSION}/namespaces/{namespace}/{PLURALS[document['kind']]}{query}"
    return plane.api("POST", path, document)


@pytest.mark.parametrize("path", _case_ids("valid"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_valid_case_is_stored_intact(control_plane: ControlPlane, case_namespace: str, path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    status, body = _create(control_plane, case_namespace, document, dry_run=False)
    assert status == 201, body.get("message", body)
    _contains(body["spec"], document["spec"])


@pytest.mark.parametrize("path", _case_ids("invalid"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_invalid_case_is_rejected(control_plane: ControlPlane, case_namespace: str, path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    status, body = _create(control_plane, case_namespace, document, dry_run=True)
    assert status in (400, 422), f"accepted: {body}"
    assert _expectation(path) in body["message"]


def test_defaults_are_applied(control_plane: ControlPlane, namespace: str) -> None:
    cases = {
        kind: yaml.safe_load((CASES / kind.lower() / "valid_minimal.yaml").read_text())
        for kind in ("AIRoute", "AITenant")
    }
    cases["ProviderSecret"] = yaml.safe_load((CASES / "providersecret" / "valid_azure.yaml").read_text())
    cases["AITenant"]["spec"]["budget"] = {"usd": 10}
    stored = {}
    for kind, document in cases.items():
        status, body = _create(control_plane, namespace, document, dry_run=False)
        assert status == 201, body
        stored[kind] = body["spec"]

    route = stored["AIRoute"]
    assert route["backends"][0]["priority"] == 0
    assert route["backends"][0]["weight"] == 1
    assert route["timeout"] == "60s"
    assert route["retry"] == {"attempts": 2, "backoff": "200ms"}
    assert route["fallbackOn"] == ["rateLimit", "timeout", "serverError", "connectionError"]
    assert "cache" not in route and "limits" not in route
    assert stored["AITenant"]["budget"]["period"] == "month"
    assert stored["AITenant"]["routes"] == ["*"]
    assert "key" not in stored["AITenant"]["keySecretRef"], "no key means every key in the Secret"
    assert stored["ProviderSecret"]["apiKeySecretRef"]["key"] == "apiKey"


def test_status_is_a_separate_subresource(control_plane: ControlPlane, namespace: str) -> None:
    document = yaml.safe_load((CASES / "airoute" / "valid_minimal.yaml").read_text())
    base = f"{GROUP_VERSION}/namespaces/{namespace}/airoutes/{document['metadata']['name']}"
    document["status"] = {"configHash": "forged-on-create"}
    status, created = _create(control_plane, namespace, document, dry_run=False)
    assert status == 201, created
    assert created["metadata"]["generation"] == 1
    assert "status" not in created, "status sent with the object must be ignored on create"

    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "Accepted",
        "message": "served by the proxy",
        "lastTransitionTime": "2026-11-22T20:00:00Z",
        "observedGeneration": 1,
    }
    status_patch = {
        "spec": {"model": "hijacked"},
        "status": {
            "observedGeneration": 1,
            "configHash": "abc123",
            "conditions": [condition],
            "phase": "pruned",
        },
    }
    status, patched = control_plane.api(
        "PATCH", f"{base}/status", status_patch, "application/merge-patch+json"
    )
    assert status == 200, patched
    assert patched["spec"]["model"] == "gpt-4o", "a status write must not change spec"
    assert patched["metadata"]["generation"] == 1, "a status write must not bump generation"
    assert patched["status"] == {"observedGeneration": 1, "configHash": "abc123", "conditions": [condition]}

    spec_patch = {"spec": {"timeout": "30s"}, "status": {"configHash": "changed-through-main-resource"}}
    status, updated = control_plane.api("PATCH", base, spec_patch, "application/merge-patch+json")
    assert status == 200, updated
    assert updated["metadata"]["generation"] == 2, "a spec change must bump generation"
    assert updated["spec"]["timeout"] == "30s"
    assert updated["status"]["configHash"] == "abc123", "the main resource must not write status"


def test_status_conditions_are_validated(control_plane: ControlPlane, namespace: str) -> None:
    document = yaml.safe_load((CASES / "aitenant" / "valid_minimal.yaml").read_text())
    status, _ = _create(control_plane, namespace, document, dry_run=False)
    assert status == 201
    bad = {"status": {"conditions": [{"type": "Ready", "status": "Maybe", "reason": "Guess", "message": "",
                                      "lastTransitionTime": "2026-11-22T20:00:00Z"}]}}  # fmt: skip
    path = f"{GROUP_VERSION}/namespaces/{namespace}/aitenants/team-a/status"
    status, body = control_plane.api("PATCH", path, bad, "application/merge-patch+json")
    assert status == 422
    assert 'status.conditions[0].status: Unsupported value: "Maybe"' in body["message"]


def _set_status(
    plane: ControlPlane, namespace: str, plural: str, name: str, status_body: dict[str, Any]
) -> None:
    path = f"{GROUP_VERSION}/namespaces/{namespace}/{plural}/{name}/status"
    status, body = plane.api("PATCH", path, {"status": status_body}, "application/merge-patch+json")
    assert status == 200, body


READY = {
    "type": "Ready",
    "status": "True",
    "reason": "Accepted",
    "message": "",
    "lastTransitionTime": "2026-11-22T20:00:00Z",
}


def test_printer_columns(control_plane: ControlPlane, namespace: str) -> None:
    for kind in ("aitenant/valid_full", "airoute/valid_full", "providersecret/valid_azure"):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(CASES / f"{kind}.yaml"), check=True)
    spend = {"usd": 12.5, "budgetUSD": 250.5, "usedPercent": 4.99, "period": "day",
             "periodStart": "2026-11-22T00:00:00Z", "tokens": {"input": 1200, "output": 340},
             "updatedAt": "2026-11-22T20:00:00Z"}  # fmt: skip
    _set_status(control_plane, namespace, "aitenants", "search", {"spend": spend, "conditions": [READY]})
    _set_status(control_plane, namespace, "airoutes", "claude-sonnet", {"conditions": [READY]})

    tenants = control_plane.kubectl("get", "aitenants", "-n", namespace, check=True).stdout.splitlines()
    assert tenants[0].split() == ["NAME", "BUDGET", "SPENT", "USED", "READY", "AGE"]
    assert tenants[1].split()[:5] == ["search", "250.5", "12.5", "4.99", "True"]

    routes = control_plane.kubectl("get", "air", "-n", namespace, check=True).stdout.splitlines()
    assert routes[0].split() == ["NAME", "MODEL", "PRIMARY", "READY", "AGE"]
    assert routes[1].split()[:4] == ["claude-sonnet", "claude-sonnet", "anthropic", "True"]

    providers = control_plane.kubectl("get", "psec", "-n", namespace, check=True).stdout.splitlines()
    assert providers[0].split() == ["NAME", "TYPE", "READY", "AGE"]
    assert providers[1].split()[:2] == ["azure-eu", "azure-openai"]


def test_category_lists_all_three_kinds(control_plane: ControlPlane, namespace: str) -> None:
    for kind in ("aitenant/valid_minimal", "airoute/valid_minimal", "providersecret/valid_mock"):
        control_plane.kubectl("apply", "-n", namespace, "-f", str(CASES / f"{kind}.yaml"), check=True)
    listed = control_plane.kubectl("get", "sluice", "-n", namespace, "-o", "name", check=True).stdout.split()
    assert sorted(listed) == [
        "airoute.sluice.dev/gpt-4o",
        "aitenant.sluice.dev/team-a",
        "providersecret.sluice.dev/mock",
    ]


def test_kubectl_explain_shows_descriptions(control_plane: ControlPlane) -> None:
    explained = control_plane.kubectl("explain", "airoutes.spec.backends.weight", check=True).stdout
    assert "Relative share of traffic" in explained


def test_rbac_applies_to_the_custom_resources(control_plane: ControlPlane, namespace: str) -> None:
    viewer = control_plane.kubeconfig_for("viewer", ["sluice:viewers"])
    denied = control_plane.kubectl("get", "airoutes", "-n", namespace, kubeconfig=viewer)
    assert denied.returncode != 0 and "forbidden" in denied.stderr
    control_plane.kubectl("create", "role", "sluice-view", "-n", namespace, "--verb=get,list,watch",
                          "--resource=airoutes.sluice.dev", check=True)  # fmt: skip
    control_plane.kubectl("create", "rolebinding", "sluice-view", "-n", namespace, "--role=sluice-view",
                          "--group=sluice:viewers", check=True)  # fmt: skip
    allowed = control_plane.kubectl(
        "auth", "can-i", "list", "airoutes.sluice.dev", "-n", namespace, kubeconfig=viewer
    )
    assert allowed.stdout.strip() == "yes"
    create = control_plane.kubectl(
        "auth", "can-i", "create", "airoutes.sluice.dev", "-n", namespace, kubeconfig=viewer
    )
    assert create.stdout.strip() == "no"


# --- offline: the CRD files themselves --------------------------------------------------------------------


def test_crd_files_decode_as_sluice_crds() -> None:
    kinds = set()
    for path in sorted(CRD_DIR.glob("*.yaml")):
        documents = list(yaml.safe_load_all(path.read_text()))
        assert len(documents) == 1, f"{path.name}: one CRD per file"
        crd = documents[0]
        names = crd["spec"]["names"]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1" and crd["kind"] == "CustomResourceDefinition"
        assert crd["metadata"]["name"] == f"{names['plural']}.sluice.dev"
        assert crd["spec"]["group"] == "sluice.dev" and crd["spec"]["scope"] == "Namespaced"
        assert names["categories"] == ["sluice"]
        assert path.name == f"{names['kind'].lower()}.yaml"
        [version] = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
        assert (
            "x-kubernetes-preserve-unknown-fields"
            not in version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        )
        kinds.add(names["kind"])
    assert kinds == set(PLURALS)


def test_status_conditions_schema_is_shared() -> None:
    """Three hand-written copies of the metav1.Condition schema must not drift apart."""
    conditions = [_root(kind)["properties"]["status"]["properties"]["conditions"] for kind in PLURALS]
    assert conditions[0] == conditions[1] == conditions[2]


def _unwrap(t: mi.Type) -> mi.Type:
    """Optional[X] → X and Annotated metadata → the inner type."""
    if isinstance(t, mi.Metadata):
        return _unwrap(t.type)
    if isinstance(t, mi.UnionType):
        [inner] = [member for member in t.types if not isinstance(member, mi.NoneType)]
        return _unwrap(inner)
    return t


def _mirror(t: mi.Type, node: dict[str, Any], path: str, skip: frozenset[str] = frozenset()) -> None:
    """Assert that the CRD schema ``node`` has the proxy type ``t``'s shape, defaults and constraints."""
    t = _unwrap(t)
    if isinstance(t, mi.StructType):
        assert node["type"] == "object", path
        properties = node["properties"]
        for field in t.fields:
            if field.encode_name in skip:
                continue
            assert field.encode_name in properties, f"{path}.{field.encode_name} is missing from the CRD"
            child = properties[field.encode_name]
            # A field the decoder requires may be optional in the CRD when the API server defaults it.
            crd_required = field.encode_name in node.get("required", [])
            assert crd_required or "default" in child if field.required else not crd_required, (
                f"{path}.{field.encode_name}: required by one side only"
            )
            default = (
                field.default_factory() if field.default_factory is not msgspec.NODEFAULT else field.default
            )
            if "default" in child and not field.required and not isinstance(child["default"], dict):
                assert child["default"] == msgspec.to_builtins(default), f"{path}.{field.encode_name} default"
            _mirror(field.type, child, f"{path}.{field.encode_name}")
    elif isinstance(t, mi.ListType):
        assert node["type"] == "array", path
        if t.min_length is not None:
            assert node["minItems"] == t.min_length, f"{path} minItems"
        _mirror(t.item_type, node["items"], f"{path}[]")
    elif isinstance(t, mi.DictType):
        assert node["type"] == "object", path
        _mirror(t.value_type, node["additionalProperties"], f"{path}{{}}")
    elif isinstance(t, mi.EnumType):
        assert node["enum"] == [member.value for member in t.cls], f"{path} enum"
    elif isinstance(t, mi.LiteralType):
        assert node["enum"] == list(t.values), f"{path} enum"
    elif isinstance(t, mi.StrType):
        assert node["type"] == "string", path
        # The CRD may be stricter than the proxy (bounded lengths keep CEL costs finite), never looser.
        if t.pattern is not None:
            assert node["pattern"] == t.pattern, f"{path} pattern"
        if t.min_length is not None:
            assert node["minLength"] == t.min_length, f"{path} minLength"
        if t.max_length is not None:
            assert node["maxLength"] == t.max_length, f"{path} maxLength"
    elif isinstance(t, mi.IntType | mi.FloatType):
        assert node["type"] == ("integer" if isinstance(t, mi.IntType) else "number"), path
        assert node.get("minimum") == (t.ge if t.gt is None else t.gt), f"{path} minimum"
        assert node.get("exclusiveMinimum", False) == (t.gt is not None), f"{path} exclusiveMinimum"
        assert node.get("maximum") == t.le, f"{path} maximum"
    elif isinstance(t, mi.BoolType):
        assert node["type"] == "boolean", path
    else:
        raise AssertionError(f"{path}: no CRD mapping for proxy type {t!r}")


# Kubernetes-only fields: credentials come from Secrets, names from metadata.name.
MIRRORS = [
    ("AIRoute", schema.Route, frozenset(), frozenset()),
    ("AITenant", schema.Tenant, frozenset({"name", "keys"}), frozenset({"keySecretRef"})),
    ("ProviderSecret", schema.Provider, frozenset({"name", "apiKey"}), frozenset({"apiKeySecretRef"})),
]


@pytest.mark.parametrize(("kind", "struct", "proxy_only", "crd_only"), MIRRORS, ids=[m[0] for m in MIRRORS])
def test_crd_spec_mirrors_the_proxy_schema(
    kind: str, struct: type[msgspec.Struct], proxy_only: frozenset[str], crd_only: frozenset[str]
) -> None:
    spec = _root(kind)["properties"]["spec"]
    _mirror(mi.type_info(struct), spec, f"{kind}.spec", skip=proxy_only)
    proxy_fields = {field.encode_name for field in msgspec.structs.fields(struct)}
    assert set(spec["properties"]) == (proxy_fields - proxy_only) | crd_only


OPERATOR_SPECS = [("AIRoute", Route), ("AITenant", AITenantSpec), ("ProviderSecret", ProviderSecretSpec)]


@pytest.mark.parametrize(("kind", "struct"), OPERATOR_SPECS, ids=[m[0] for m in OPERATOR_SPECS])
def test_crd_spec_matches_the_operator_decoder(kind: str, struct: type[msgspec.Struct]) -> None:
    """Whatever the API server admits, sluice-operator decodes: same fields, constraints and defaults."""
    spec = _root(kind)["properties"]["spec"]
    _mirror(mi.type_info(struct), spec, f"{kind}.spec")
    assert set(spec["properties"]) == {field.encode_name for field in msgspec.structs.fields(struct)}


def test_provider_types_match_default_base_urls() -> None:
    """The CRD's baseURL description promises per-type defaults; every type but azure has one."""
    types = _root("ProviderSecret")["properties"]["spec"]["properties"]["type"]["enum"]
    assert {schema.ProviderType(t) for t in types} - set(schema.DEFAULT_BASE_URLS) == {
        schema.ProviderType.AZURE_OPENAI
    }
