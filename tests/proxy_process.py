"""Start a real `sluice-proxy` process on a free port and wait until it is ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Any, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"
) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class ProxyProcess:
    """A running proxy whose config lives in a kubelet-style projected directory.

    ``config_path`` is ``<dir>/sluice.yaml``, a symlink through ``..data`` to a timestamped
    directory, exactly as Kubernetes mounts a ConfigMap, so tests can swap it atomically.
    """

    def __init__(
        self,
        directory: Path,
        config: dict[str, Any],
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = directory / "sluice.yaml"
        self._generation = 0
        self.log_path = directory.parent / f"proxy-{self.port}.log"
        self.write_config(config)
        os.symlink("..data/sluice.yaml", self.config_path)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice_proxy",
                "--config",
                str(self.config_path),
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        try:
            wait_until(self._ready, timeout=20, message=f"proxy on port {self.port} to become ready")
        except AssertionError:
            self.stop()
            raise AssertionError(f"proxy did not start:\n{self.logs()}") from None

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"proxy exited with {self.process.returncode}:\n{self.logs()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def write_config(self, config: dict[str, Any] | str) -> None:
        """Publish a new config the way the kubelet does: new dir, then swap ``..data``."""
        self._generation += 1
        target = self.directory / f"..{self._generation:04d}"
        target.mkdir()
        text = config if isinstance(config, str) else yaml.safe_dump(config)
        (target / "sluice.yaml").write_text(text)
        tmp = self.directory / "..data_tmp"
        os.symlink(target.name, tmp)
        os.replace(tmp, self.directory / "..data")

    def readyz(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/readyz", timeout=5).json()
        return data

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample in /metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            name_part, _, label_part = sample.partition("{")
            if name_part != name:
                continue
            if all(f'{k}="{v}"' in label_part for k, v in labels.items()) or not want:
                return float(value)
        return 0.0

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def sighup(self) -> None:
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
