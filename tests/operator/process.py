"""Run the real ``sluice-operator`` console script against a test control plane, with only its RBAC."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sluice_operator.rbac import cluster_role
from tests.controlplane.harness import ControlPlane
from tests.proxy_process import free_port, wait_until

OPERATOR = Path(sys.executable).parent / "sluice-operator"
USER = "sluice-operator-test"


def write_webhook_certs(directory: Path) -> bytes:
    """A CA and a serving certificate for 127.0.0.1 in ``directory`` (tls.crt, tls.key); returns the CA PEM."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sluice-webhook-test-ca")])

    def builder(subject: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca = builder(ca_name, ca_key).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True
    )
    ca_cert = ca.sign(ca_key, hashes.SHA256())
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), key)
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_cert.public_bytes(serialization.Encoding.PEM)


def grant_operator_rbac(plane: ControlPlane) -> Path:
    """Bind exactly :data:`sluice_operator.rbac.RULES` to a fresh user; its kubeconfig."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
        "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}],
    }
    manifest = {"apiVersion": "v1", "kind": "List", "items": [cluster_role(USER), binding]}
    plane.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=True)
    return plane.kubeconfig_for(USER, [])


@dataclass
class RunningOperator:
    process: subprocess.Popen[bytes]
    log: Path
    webhook_port: int
    webhook_ca: bytes
    health_port: int

    def logs(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"sluice-operator exited with {self.process.returncode}:\n{self.logs()}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False


def webhook_configuration(name: str, operator: RunningOperator) -> dict[str, Any]:
    """What the chart renders, pointed at the operator on loopback; failurePolicy Fail so a miss shows."""

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "inject.sluice.dev",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "reinvocationPolicy": "IfNeeded",
                "timeoutSeconds": 10,
                "objectSelector": {"matchLabels": {"sluice.dev/inject": "true"}},
                "clientConfig": {
                    "url": f"https://127.0.0.1:{operator.webhook_port}/mutate-pods",
                    "caBundle": base64.b64encode(operator.webhook_ca).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
            }
        ],
    }


@contextmanager
def running_operator(
    plane: ControlPlane, directory: Path, redis_url: str | None = None, peering_name: str = ""
) -> Iterator[RunningOperator]:
    """``sluice-operator`` as a subprocess with only its RBAC; SIGTERM and a clean exit at the end."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = write_webhook_certs(directory / "webhook")
    health_port, webhook_port = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(grant_operator_rbac(plane)),
        "SLUICE_HEALTH_PORT": str(health_port),
        "SLUICE_WEBHOOK_PORT": str(webhook_port),
        "SLUICE_WEBHOOK_HOST": "127.0.0.1",
        "SLUICE_WEBHOOK_CERT_DIR": str(directory / "webhook"),
        "SLUICE_PROXY_IMAGE": "example.test/sluice-proxy:test",
        "SLUICE_DEBOUNCE_SECONDS": "0.05",
        "SLUICE_SPEND_INTERVAL_SECONDS": "0.3",
        "SLUICE_REDIS_URL": redis_url or "",
        "SLUICE_WATCH_NAMESPACES": "",
        "SLUICE_PEERING_NAME": peering_name,
        "POD_ID": directory.name,  # kopf's peering identity, as the chart sets it from the pod name
    }
    log = directory / "operator.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(OPERATOR)], env=env, stdout=out, stderr=subprocess.STDOUT)
    running = RunningOperator(process, log, webhook_port, ca, health_port)
    try:
        wait_until(running.healthy, timeout=60, interval=0.1, message="sluice-operator /healthz")
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
