"""YAML/JSON text ⇄ :class:`SluiceConfig`, with errors that name the field."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from pathlib import Path
from typing import Any, get_origin

import msgspec
import yaml

from .check import Problem, check
from .schema import SluiceConfig


class ConfigError(Exception):
    """A configuration that cannot be served; every problem names its path."""

    def __init__(self, problems: list[Problem], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"invalid {source}: " + "; ".join(str(p) for p in problems))


def _msgspec_path(message: str) -> tuple[str, str]:
    """Split msgspec's "Expected int, got str - at `$.routes[0].weight`" into (path, message)."""
    text, sep, where = message.rpartition(" - at `")
    if not sep:
        return "config", message
    return where.rstrip("`").removeprefix("$.").removeprefix("$") or "config", text


def decode(data: Any, source: str = "config") -> SluiceConfig:
    """Validate plain data (a parsed YAML/JSON document) and all cross-references."""
    if data is None:
        data = {}
    try:
        config = msgspec.convert(data, SluiceConfig, str_keys=True)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, source) from None
    return _checked(config, source)


def _invalid(exc: msgspec.ValidationError, source: str) -> ConfigError:
    path, message = _msgspec_path(str(exc))
    return ConfigError([Problem(path, message)], source)


def _checked(config: SluiceConfig, source: str) -> SluiceConfig:
    if problems := check(config):
        raise ConfigError(problems, source)
    return config


JSON_SLICE = 500
"""List items decoded per call: one call holds the GIL throughout, and a reload shares it with requests."""
_FIELDS = {field.encode_name: field for field in msgspec.structs.fields(SluiceConfig)}


def _decode_json(text: str | bytes, source: str) -> SluiceConfig:
    """JSON (the operator's form) straight into the schema, field by field and long lists in slices.

    Decoding a 4 MB namespace in one call holds the GIL for ~30 ms, stalling every request of
    the proxy meanwhile; slices of :data:`JSON_SLICE` items keep each hold to a millisecond or two.
    """
    values: dict[str, Any] = {}
    for name, raw in msgspec.json.decode(text, type=dict[str, msgspec.Raw]).items():
        field = _FIELDS.get(name)
        if field is None:
            raise ConfigError([Problem("config", f"Object contains unknown field `{name}`")], source)
        if get_origin(field.type) is list:
            items = msgspec.json.decode(raw, type=list[msgspec.Raw])
            decoded: list[Any] = []
            for start in range(0, len(items), JSON_SLICE):
                chunk = b"[" + b",".join(items[start : start + JSON_SLICE]) + b"]"
                try:
                    decoded += msgspec.json.decode(chunk, type=field.type)
                except msgspec.ValidationError as exc:
                    path, message = _msgspec_path(str(exc))
                    index, _, rest = path.removeprefix("[").partition("]")
                    raise ConfigError(
                        [Problem(f"{name}[{start + int(index)}]{rest}", message)], source
                    ) from None
            values[field.name] = decoded
        else:
            try:
                values[field.name] = msgspec.json.decode(raw, type=field.type)
            except msgspec.ValidationError as exc:
                path, message = _msgspec_path(str(exc))
                raise ConfigError(
                    [Problem(name if path == "config" else f"{name}.{path}", message)], source
                ) from None
    return SluiceConfig(**values)


_GZIP_MAGIC = b"\x1f\x8b"
# libyaml's loader when PyYAML was built with it: an order of magnitude faster on big files.
_YAMLLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def loads(text: str | bytes, source: str = "config") -> SluiceConfig:
    """YAML, JSON, or either gzipped (the operator gzips configs too large for a plain ConfigMap)."""
    if isinstance(text, bytes) and text.startswith(_GZIP_MAGIC):
        try:
            text = gzip.decompress(text)
        except (OSError, EOFError) as exc:
            raise ConfigError([Problem("config", f"not valid gzip: {exc}")], source) from None
    if text.lstrip()[:1] in ("{", b"{"):
        try:
            return _checked(_decode_json(text, source), source)
        except msgspec.DecodeError as exc:
            raise ConfigError([Problem("config", f"not valid JSON: {exc}")], source) from None
    try:
        data = yaml.load(text, Loader=_YAMLLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("config", f"not valid YAML: {exc}")], source) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError([Problem("config", "the top level must be a mapping")], source)
    return decode(data, source)


def load(path: str | Path) -> SluiceConfig:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem("config", f"cannot read {path}: {exc.strerror}")], str(path)) from None
    return loads(text, str(path))


def dumps(config: SluiceConfig) -> bytes:
    """Canonical YAML for ``config`` (what the operator publishes)."""
    return yaml.safe_dump(to_builtins(config), sort_keys=False).encode()


def to_builtins(config: SluiceConfig) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(config)
    return data


def hash_key(key: str | bytes) -> str:
    """How gateway keys are stored and looked up, by proxy and operator alike: SHA-256, hex."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).hexdigest()


def checksum(config: SluiceConfig) -> str:
    """Stable short hash of a config's content (for /readyz and the config-info metric).

    Encoded field by field and long lists in slices, like :func:`_decode_json`: one encode of
    a large namespace would hold the GIL for ~5 ms while requests wait during a reload.
    """
    digest = hashlib.sha256()
    for name, field in _FIELDS.items():
        value = getattr(config, field.name)
        digest.update(name.encode())
        if isinstance(value, list):
            for start in range(0, len(value), JSON_SLICE):
                digest.update(msgspec.json.encode(value[start : start + JSON_SLICE]))
        else:
            digest.update(msgspec.json.encode(value))
    return digest.hexdigest()[:16]


def default_text() -> str:
    """The embedded default configuration shipped with the proxy."""
    return resources.files("sluice_proxy.config").joinpath("default.yaml").read_text()
