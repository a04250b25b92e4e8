"""`helm lint` and `helm template` over the value combinations users install, each manifest validated."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml
from cryptography import x509

from sluice_operator.bundle import config_text
from sluice_operator.render import Snapshot, render
from sluice_operator.settings import Settings
from tests.chart.conftest import NAMESPACE, Helm
from tests.chart.manifests import CHART, container, env_of, find, one, pod_specs, validate

FULLNAME = "sluice"  # the release is named after the chart, so the prefix is not doubled
EXTERNAL_REDIS = "rediss://redis.example:6380/2"

COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "sidecar-only": {"gateway": {"enabled": False}},
    "gateway-only": {"webhook": {"enabled": False}},
    "external-redis": {"redis": {"external": {"url": EXTERNAL_REDIS}, "bundled": {"enabled": False}}},
    "no-quota-leases": {"redis": {"quotaLeases": False}},
    "cert-manager-self-signed": {"webhook": {"certManager": {"enabled": True}}},
    "cert-manager-cluster-issuer": {
        "webhook": {"certManager": {"enabled": True, "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}
    },
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}},
    "network-policy": {
        "networkPolicy": {"enabled": True, "gatewayFrom": [{"podSelector": {"matchLabels": {"app": "web"}}}]}
    },
    "autoscaling": {"gateway": {"autoscaling": {"enabled": True, "maxReplicas": 5}, "workers": 2}},
    "watched-namespaces": {"operator": {"watchNamespaces": ["team-a", "team-b"]}},
    "everything-on": {
        "networkPolicy": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "webhook": {"certManager": {"enabled": True}, "failurePolicy": "Fail"},
        "gateway": {"autoscaling": {"enabled": True}},
    },
}


@pytest.fixture(scope="module", params=list(COMBINATIONS), ids=list(COMBINATIONS))
def rendered(request: pytest.FixtureRequest, helm: Helm) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    values = COMBINATIONS[request.param]
    return values, helm.template(values)


def test_lint_strict(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_manifest_is_valid(rendered: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    _, docs = rendered
    for doc in docs:
        validate(doc)


def test_every_pod_runs_locked_down(rendered: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    _, docs = rendered
    specs = list(pod_specs(docs))
    assert specs
    for where, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] == 10001, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for box in spec["containers"] + spec.get("initContainers", []):
            context = box["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, f"{where} {box['name']}"
            assert context["readOnlyRootFilesystem"] is True, f"{where} {box['name']}"
            assert context["capabilities"] == {"drop": ["ALL"]}, f"{where} {box['name']}"
            assert "limits" in box["resources"] and "requests" in box["resources"], f"{where} {box['name']}"


def test_services_select_their_pods(rendered: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    _, docs = rendered
    templates = [d["spec"]["template"] for d in find(docs, "Deployment")]
    for service in find(docs, "Service"):
        selector = service["spec"]["selector"].items()
        matches = [t for t in templates if selector <= t["metadata"]["labels"].items()]
        assert len(matches) == 1, f"Service/{service['metadata']['name']} selects {len(matches)} workloads"
        ports = {p["name"] for c in matches[0]["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (
                f"Service/{service['metadata']['name']} → {port['targetPort']}"
            )


def test_operator_settings_match_the_mounts(rendered: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    """The operator reads the env the chart sets (Settings.from_env) and finds what the pod mounts."""
    values, docs = rendered
    spec = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    operator = container(spec, "operator")
    settings = Settings.from_env(env_of(operator))
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert spec["serviceAccountName"] == f"{FULLNAME}-operator"
    assert operator["livenessProbe"]["httpGet"]["port"] == "health"
    assert settings.health_port == ports["health"]
    assert settings.peering_name == FULLNAME
    assert settings.namespaces == tuple(values.get("operator", {}).get("watchNamespaces", []))
    assert settings.sidecar.image == "ghcr.io/sluice-dev/sluice-proxy:0.1.0"
    if values.get("webhook", {}).get("enabled", True):
        mounts = {m["mountPath"]: m["name"] for m in operator["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert settings.webhook_port == ports["webhook"] == 9443
        secret = volumes[mounts[str(settings.webhook_cert_dir)]]["secret"]["secretName"]
        assert secret == f"{FULLNAME}-webhook-tls"
    else:
        assert settings.webhook_cert_dir is None
        assert not find(docs, "MutatingWebhookConfiguration")


def test_redis_url_reaches_the_operator(rendered: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    values, docs = rendered
    operator = container(one(docs, "Deployment", "-operator")["spec"]["template"]["spec"], "operator")
    url = Settings.from_env(env_of(operator)).redis_url
    if values.get("redis", {}).get("external", {}).get("url"):
        assert url == EXTERNAL_REDIS
        assert not find(docs, "Deployment", "-redis")
    else:
        service = one(docs, "Service", "-redis")
        assert url == f"redis://{service['metadata']['name']}.{NAMESPACE}.svc:6379/0"


def test_quota_leases_reach_the_rendered_config(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """values.yaml → operator env → Settings → the redis section of the config the operator publishes."""
    values, docs = rendered
    operator = container(one(docs, "Deployment", "-operator")["spec"]["template"]["spec"], "operator")
    settings = Settings.from_env(env_of(operator))
    snapshot = Snapshot(
        namespace="team-a",
        resources=[],
        secrets={},
        redis_url=settings.redis_url,
        quota_leases=settings.quota_leases,
    )
    published = yaml.safe_load(config_text(render(snapshot).config))
    assert published["redis"]["quotaLeases"] is values.get("redis", {}).get("quotaLeases", True)


def test_gateway_serves_the_operator_rendered_config(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    values, docs = rendered
    if not values.get("gateway", {}).get("enabled", True):
        assert not find(docs, "Deployment", "-gateway") and not find(docs, "Pod")
        return
    deployment = one(docs, "Deployment", "-gateway")
    template = deployment["spec"]["template"]
    proxy = container(template["spec"], "proxy")
    assert template["metadata"]["labels"]["sluice.dev/proxy"] == "true"
    assert "--config=/etc/sluice/config/sluice.yaml" in proxy["args"]
    assert "--host=0.0.0.0" in proxy["args"]
    mounts = {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]}
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert mounts["config"] == "/etc/sluice/config"
    assert volumes["config"]["configMap"] == {"name": "sluice-config", "optional": True}
    assert mounts["credentials"] == "/etc/sluice/credentials"
    assert volumes["credentials"]["secret"] == {"secretName": "sluice-credentials", "optional": True}
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert proxy["livenessProbe"]["httpGet"]["path"] == "/healthz"
    selector = deployment["spec"]["selector"]["matchLabels"]
    for constraint in template["spec"]["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == selector
    autoscaled = values.get("gateway", {}).get("autoscaling", {}).get("enabled", False)
    assert ("replicas" not in deployment["spec"]) == autoscaled
    assert bool(find(docs, "HorizontalPodAutoscaler")) == autoscaled
    assert one(docs, "PodDisruptionBudget", "-gateway")["spec"]["selector"]["matchLabels"] == selector
    test_pod = one(docs, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert f"{FULLNAME}-gateway.{NAMESPACE}.svc:80/readyz" in test_pod["spec"]["containers"][0]["command"][-1]


def test_webhook_targets_the_operator(rendered: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    values, docs = rendered
    if not values.get("webhook", {}).get("enabled", True):
        return
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["clientConfig"]["service"] == {
        "name": f"{FULLNAME}-webhook",
        "namespace": NAMESPACE,
        "port": 443,
        "path": "/mutate-pods",
    }
    assert hook["objectSelector"] == {"matchLabels": {"sluice.dev/inject": "true"}}
    assert hook["sideEffects"] == "None"
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["failurePolicy"] == values.get("webhook", {}).get("failurePolicy", "Ignore")


def test_generated_certificate_is_signed_by_the_ca_bundle(helm: Helm) -> None:
    docs = helm.template()
    (hook,) = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    secret = one(docs, "Secret", "-webhook-tls")["data"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(hook["clientConfig"]["caBundle"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["tls.crt"]))
    assert base64.b64decode(secret["ca.crt"]) == base64.b64decode(hook["clientConfig"]["caBundle"])
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    # The API server calls <service>.<namespace>.svc; that name must be in the certificate.
    assert f"{FULLNAME}-webhook.{NAMESPACE}.svc" in names


def test_checksum_annotations_stay_strings(helm: Helm) -> None:
    """A hex digest can be all digits; unquoted, YAML reads it as a number and the API server refuses it."""
    result = helm.run("template", "sluice", str(CHART), "--namespace", NAMESPACE)
    assert result.returncode == 0, result.stderr
    lines = re.findall(r"^\s*checksum/[\w.-]+:\s*(.*)$", result.stdout, re.MULTILINE)
    assert lines, "the chart renders no checksum annotation any more"
    for value in lines:
        assert re.fullmatch(r'"[0-9a-f]{16}"', value), f"checksum annotation not a quoted string: {value}"


@pytest.mark.parametrize(
    "issuer", [{}, {"name": "ca", "kind": "ClusterIssuer"}], ids=["self-signed", "issuer"]
)
def test_cert_manager_injects_the_ca(helm: Helm, issuer: dict[str, str]) -> None:
    docs = helm.template({"webhook": {"certManager": {"enabled": True, "issuerRef": issuer}}})
    certificate = one(docs, "Certificate")
    hook_config = one(docs, "MutatingWebhookConfiguration")
    assert not find(docs, "Secret"), "cert-manager writes the TLS Secret, the chart must not"
    assert certificate["spec"]["secretName"] == f"{FULLNAME}-webhook-tls"
    assert f"{FULLNAME}-webhook.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    ref = f"{NAMESPACE}/{certificate['metadata']['name']}"
    assert hook_config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == ref
    assert "caBundle" not in hook_config["webhooks"][0]["clientConfig"]
    if issuer:
        assert certificate["spec"]["issuerRef"]["kind"] == "ClusterIssuer"
        assert not find(docs, "Issuer")
    else:
        assert certificate["spec"]["issuerRef"]["name"] == one(docs, "Issuer")["metadata"]["name"]


def test_peering_object_follows_the_watch_scope(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    values, docs = rendered
    watched = values.get("operator", {}).get("watchNamespaces", [])
    if watched:
        peerings = find(docs, "KopfPeering")
        assert sorted(p["metadata"]["namespace"] for p in peerings) == sorted(watched)
        assert not find(docs, "ClusterKopfPeering")
    else:
        peerings = [one(docs, "ClusterKopfPeering")]
    assert {p["metadata"]["name"] for p in peerings} == {FULLNAME}


def test_optional_resources_follow_their_switch(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    values, docs = rendered
    monitor = values.get("metrics", {}).get("serviceMonitor", {}).get("enabled", False)
    assert bool(find(docs, "ServiceMonitor")) == monitor
    if monitor:
        endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
        assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    policies = find(docs, "NetworkPolicy")
    assert bool(policies) == values.get("networkPolicy", {}).get("enabled", False)
    dashboard = one(docs, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["sluice.json"].startswith("{")
