"""PURE: a rendering → the bodies of ConfigMap ``sluice-config`` and Secret ``sluice-credentials``.

The config is YAML under ``sluice.yaml``. Above :data:`COMPRESS_ABOVE` bytes it is JSON (which
is YAML too, and 50 times faster to write and read than YAML at that size), gzipped into
``binaryData`` under the same key: the mounted file keeps its path and the proxy tells the
two apart by the gzip magic bytes (``1f 8b``). That keeps 10,000 tenants under the API
server's 1 MiB object limit.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import msgspec
import yaml

from sluice_proxy.config import SluiceConfig

from .api import CONFIG_KEY, CONFIG_MAP, CREDENTIALS_SECRET, HASH_ANNOTATION, MANAGED_BY

COMPRESS_ABOVE = 256 * 1024
MAX_OBJECT_BYTES = 1024 * 1024 - 64 * 1024
"""What a published object may hold: the API server's 1 MiB limit less room for metadata."""

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class TooLarge(Exception):
    """The config does not fit in one ConfigMap even compressed."""


def _without_nulls(value: Any) -> Any:
    """Drop None fields: they are the schema's defaults and make up half the text at scale."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def config_text(config: SluiceConfig) -> bytes:
    """Block YAML for a config a person may read; JSON (``", "``/``": "`` keep it YAML) above the threshold."""
    data = _without_nulls(msgspec.to_builtins(config))
    text = json.dumps(data, ensure_ascii=False)
    if len(text) <= COMPRESS_ABOVE:
        text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000)
    return text.encode()


@dataclass(frozen=True)
class Bundle:
    config_map: dict[str, Any]
    secret: dict[str, Any]
    hash: str
    config_bytes: int
    """Size of the config as published (compressed when it was)."""
    compressed: bool


def build(namespace: str, config: SluiceConfig, credentials: dict[str, bytes]) -> Bundle:
    """The two objects to publish, annotated with the hash of their content."""
    text = config_text(config)
    digest = hashlib.sha256(text)
    for name in sorted(credentials):
        digest.update(b"\0" + name.encode() + b"\0" + credentials[name])
    content_hash = digest.hexdigest()[:16]

    metadata = {
        "namespace": namespace,
        "labels": dict(MANAGED_BY),
        "annotations": {HASH_ANNOTATION: content_hash},
    }
    compressed = len(text) > COMPRESS_ABOVE
    if compressed:
        packed = base64.b64encode(gzip.compress(text, compresslevel=9, mtime=0)).decode()
        body: dict[str, Any] = {"binaryData": {CONFIG_KEY: packed}}
        size = len(packed)
    else:
        body = {"data": {CONFIG_KEY: text.decode()}}
        size = len(text)
    if size > MAX_OBJECT_BYTES:
        raise TooLarge(
            f"the rendered config is {size} bytes even gzipped (limit {MAX_OBJECT_BYTES}); "
            "split the tenants over more namespaces"
        )
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, **metadata},
        **body,
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": CREDENTIALS_SECRET, **metadata},
        "data": {name: base64.b64encode(value).decode() for name, value in sorted(credentials.items())},
    }
    return Bundle(config_map, secret, content_hash, size, compressed)
