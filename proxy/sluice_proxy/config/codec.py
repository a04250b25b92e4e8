"""YAML/JSON text ⇄ :class:`SluiceConfig`, with errors that name the field."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin

import msgspec
import yaml
from msgspec import UNSET, UnsetType

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


JSON_SLICE = 100
"""List items decoded per call: one call holds the GIL throughout, and a reload shares it with requests.

100 tenants take about 0.3 ms; 500 let the worst request during a 10,000-tenant reload take 8-16 ms
against 7-8 ms (bench, scale scenario, alternated)."""
_FIELDS = {field.encode_name: field for field in msgspec.structs.fields(SluiceConfig)}
_LIST_ITEMS = {name: get_args(f.type)[0] for name, f in _FIELDS.items() if get_origin(f.type) is list}
"""The item type of each list field, by its name on the wire."""


class Reuse:
    """The list items of the last JSON load, by their text: a reload decodes and encodes only what changed.

    The operator republishes a whole namespace when one AITenant or AIRoute changes, so in a
    10,000-tenant config nearly every item's text is the same as last time. The same text
    decodes to the same (frozen) item, so the previous one is reused; that one object also keeps
    its compiled form (see ``runtime.compile_config``) and its digest for :func:`checksum`.
    Costs the text of the items (about the size of the file) in memory. Held by one process's
    loads of one file, used by one load at a time.
    """

    def __init__(self) -> None:
        self._items: dict[str, dict[bytes, tuple[Any, bytes]]] = {}
        """Per list field: item text -> (item, :func:`item_digest` of it)."""
        self._digests: dict[int, bytes] = {}
        """Digests by ``id(item)``; ``_items`` keeps every such item alive, so no id is reused."""

    def decode(self, lists: dict[str, tuple[list[msgspec.Raw], Any]], source: str) -> dict[str, list[Any]]:
        """The items of each list field (raw items, item type): the kept ones where the text is unchanged.

        Then keeps exactly these for the next load; a load that fails keeps what it had.
        """
        kept: dict[str, dict[bytes, tuple[Any, bytes]]] = {}
        items: dict[str, list[Any]] = {}
        for name, (raws, item_type) in lists.items():
            previous = self._items.get(name, {})
            texts = [bytes(raw) for raw in raws]
            known = [previous.get(text) for text in texts]
            missing = [i for i, entry in enumerate(known) if entry is None]
            for start in range(0, len(missing), JSON_SLICE):
                indexes = missing[start : start + JSON_SLICE]
                decoded = _decode_slice(name, [texts[i] for i in indexes], indexes, item_type, source)
                for i, item in zip(indexes, decoded, strict=True):
                    known[i] = (item, item_digest(item))
            entries = [entry for entry in known if entry is not None]
            kept[name] = dict(zip(texts, entries, strict=True))
            items[name] = [item for item, _ in entries]
        self._items = kept
        self._digests = {id(item): digest for field in kept.values() for item, digest in field.values()}
        return items

    def __len__(self) -> int:
        """How many items it keeps: those of the last load."""
        return sum(map(len, self._items.values()))

    def digest(self, item: Any) -> bytes:
        known = self._digests.get(id(item))
        return known if known is not None else item_digest(item)


def _decode_slice(
    name: str, texts: list[bytes], indexes: list[int], item_type: Any, source: str
) -> list[Any]:
    try:
        items: list[Any] = msgspec.json.decode(b"[" + b",".join(texts) + b"]", type=list[item_type])
    except msgspec.ValidationError as exc:
        path, message = _msgspec_path(str(exc))
        index, _, rest = path.removeprefix("[").partition("]")
        raise ConfigError([Problem(f"{name}[{indexes[int(index)]}]{rest}", message)], source) from None
    return items


_Outline = msgspec.defstruct(
    "_Outline",
    [
        (name, (list[msgspec.Raw] if name in _LIST_ITEMS else msgspec.Raw) | UnsetType, UNSET)
        for name in _FIELDS
    ],
    forbid_unknown_fields=True,
)
"""A config's top level as raw JSON, lists as their items: what one scan of the text yields."""


def _decode_json(text: str | bytes, source: str, reuse: Reuse | None) -> SluiceConfig:
    """JSON (the operator's form) straight into the schema, field by field and long lists in slices.

    Decoding a 4 MB namespace in one call holds the GIL for ~30 ms, stalling every request of
    the proxy meanwhile; slices of :data:`JSON_SLICE` items keep each hold well under a millisecond
    (after the one scan that finds the items, 3-5 ms).
    """
    if reuse is None:
        reuse = Reuse()
    try:
        outline = msgspec.json.decode(text, type=_Outline)
    except msgspec.ValidationError as exc:
        path, message = _msgspec_path(str(exc))
        raise ConfigError([Problem(path, message)], source) from None
    values: dict[str, Any] = {}
    lists: dict[str, tuple[list[msgspec.Raw], Any]] = {}
    for name, field in _FIELDS.items():
        raw = getattr(outline, name)
        if raw is UNSET:
            continue
        if name in _LIST_ITEMS:
            lists[name] = (raw, _LIST_ITEMS[name])
            continue
        try:
            values[field.name] = msgspec.json.decode(raw, type=field.type)
        except msgspec.ValidationError as exc:
            path, message = _msgspec_path(str(exc))
            raise ConfigError(
                [Problem(name if path == "config" else f"{name}.{path}", message)], source
            ) from None
    for name, items in reuse.decode(lists, source).items():
        values[_FIELDS[name].name] = items
    return SluiceConfig(**values)


_GZIP_MAGIC = b"\x1f\x8b"
# libyaml's loader when PyYAML was built with it: an order of magnitude faster on big files.
_YAMLLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def loads(text: str | bytes, source: str = "config", reuse: Reuse | None = None) -> SluiceConfig:
    """YAML, JSON, or either gzipped (the operator gzips configs too large for a plain ConfigMap).

    ``reuse`` carries a JSON load's items over to the next load of the same file (see :class:`Reuse`).
    """
    if isinstance(text, bytes) and text.startswith(_GZIP_MAGIC):
        try:
            text = gzip.decompress(text)
        except (OSError, EOFError) as exc:
            raise ConfigError([Problem("config", f"not valid gzip: {exc}")], source) from None
    if text.lstrip()[:1] in ("{", b"{"):
        try:
            return _checked(_decode_json(text, source, reuse), source)
        except msgspec.DecodeError as exc:
            raise ConfigError([Problem("config", f"not valid JSON: {exc}")], source) from None
    try:
        data = yaml.load(text, Loader=_YAMLLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("config", f"not valid YAML: {exc}")], source) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError([Problem("config", "the top level must be a mapping")], source)
    return decode(data, source)


def load(path: str | Path, reuse: Reuse | None = None) -> SluiceConfig:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem("config", f"cannot read {path}: {exc.strerror}")], str(path)) from None
    return loads(text, str(path), reuse)


def dumps(config: SluiceConfig) -> bytes:
    """Canonical YAML for ``config`` (what the operator publishes)."""
    return yaml.safe_dump(to_builtins(config), sort_keys=False).encode()


def to_builtins(config: SluiceConfig) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(config)
    return data


def hash_key(key: str | bytes) -> str:
    """How gateway keys are stored and looked up, by proxy and operator alike: SHA-256, hex."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).hexdigest()


def item_digest(item: Any) -> bytes:
    """SHA-256 of one list item's canonical JSON: what :func:`checksum` hashes a list from."""
    return hashlib.sha256(msgspec.json.encode(item)).digest()


def checksum(config: SluiceConfig, reuse: Reuse | None = None) -> str:
    """Stable short hash of a config's content (for /readyz and the config-info metric).

    Lists are hashed from their items' digests, which ``reuse`` remembers for the items it kept;
    one encode of a large namespace would hold the GIL for ~5 ms while requests wait during a reload.
    """
    digest_of = reuse.digest if reuse is not None else item_digest
    digest = hashlib.sha256()
    for name, field in _FIELDS.items():
        value = getattr(config, field.name)
        digest.update(name.encode())
        if isinstance(value, list):
            digest.update(b"".join(map(digest_of, value)))
        else:
            digest.update(msgspec.json.encode(value))
    return digest.hexdigest()[:16]


def default_text() -> str:
    """The embedded default configuration shipped with the proxy."""
    return resources.files("sluice_proxy.config").joinpath("default.yaml").read_text()
