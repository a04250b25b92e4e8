"""A reload of a JSON config reuses what did not change, and serves exactly what a fresh load would."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from sluice_proxy import config
from sluice_proxy.runtime import RuntimeConfig, compile_config

TENANTS = 1200  # more than codec.JSON_SLICE: misses in a late slice keep their absolute index


def namespace(key_file: Path) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "a",
                "type": "openai",
                "baseURL": "http://127.0.0.1:1",
                "apiKey": {"file": str(key_file)},
            },
            {"name": "b", "type": "mock"},
        ],
        "routes": [
            {"model": "via-a", "backends": [{"provider": "a", "model": "x"}]},
            {"model": "via-b", "backends": [{"provider": "b", "model": "y"}]},
        ],
        "tenants": [
            {"name": f"t{i}", "keys": [{"value": f"sk-tenant-{i:05d}"}], "routes": ["*"]}
            for i in range(TENANTS)
        ],
    }


class Loader:
    """Loads ``path`` the way the reloader does: one Reuse, each compile against the last runtime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reuse = config.Reuse()
        self.runtime: RuntimeConfig | None = None

    def load(self, data: dict[str, Any]) -> RuntimeConfig:
        self.path.write_text(json.dumps(data))
        self.runtime = compile_config(config.load(self.path, self.reuse), self.runtime, self.reuse)
        return self.runtime


def fresh(path: Path) -> RuntimeConfig:
    return compile_config(config.load(path))


def served(runtime: RuntimeConfig) -> dict[str, Any]:
    """What the request path reads, as plain data."""
    return {
        "config": msgspec.to_builtins(runtime.config),
        "checksum": runtime.checksum,
        "keys": {digest: tenant.name for digest, tenant in runtime.tenants_by_key_hash.items()},
        "routes": {
            model: [b.target for tier in r.tiers for b in tier] for model, r in runtime.routes.items()
        },
    }


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_text("sk-upstream-old\n")
    return path


def test_unchanged_items_are_reused_and_the_result_equals_a_fresh_load(
    tmp_path: Path, key_file: Path
) -> None:
    loader = Loader(tmp_path / "sluice.json")
    data = namespace(key_file)
    first = loader.load(data)
    data["tenants"][900]["keys"] = [{"value": "sk-rotated"}]
    second = loader.load(data)

    assert served(second) == served(fresh(loader.path))
    assert second.checksum != first.checksum
    assert second.config.tenants[0] is first.config.tenants[0]
    assert second.config.tenants[900] is not first.config.tenants[900]
    by_key = second.tenants_by_key_hash
    assert (
        by_key[config.hash_key("sk-tenant-00000")]
        is first.tenants_by_key_hash[config.hash_key("sk-tenant-00000")]
    )
    assert by_key[config.hash_key("sk-rotated")].name == "t900"
    assert config.hash_key("sk-tenant-00900") not in by_key
    assert second.routes["via-a"] is first.routes["via-a"]


def test_removed_and_reordered_items_load_as_written(tmp_path: Path, key_file: Path) -> None:
    loader = Loader(tmp_path / "sluice.json")
    data = namespace(key_file)
    loader.load(data)
    data["tenants"] = data["tenants"][::-1][:-5]  # t0..t4 gone, the rest backwards
    data["routes"].reverse()
    second = loader.load(data)

    assert served(second) == served(fresh(loader.path))
    assert [t.name for t in second.config.tenants][:2] == [f"t{TENANTS - 1}", f"t{TENANTS - 2}"]
    assert len(second.tenants_by_key_hash) == TENANTS - 5
    assert len(loader.reuse) == TENANTS - 5 + 2 + 2  # what it keeps: this load's items only


def test_a_changed_secret_file_recompiles_the_routes_of_its_provider(tmp_path: Path, key_file: Path) -> None:
    """The config text is the same; the reloader reloads because the key file changed."""
    loader = Loader(tmp_path / "sluice.json")
    data = namespace(key_file)
    first = loader.load(data)
    key_file.write_text("sk-upstream-new\n")
    second = loader.load(data)

    assert second.checksum == first.checksum
    assert second.routes["via-a"] is not first.routes["via-a"]
    assert second.routes["via-a"].tiers[0][0].target.api_key == "sk-upstream-new"
    assert second.routes["via-b"] is first.routes["via-b"]
    assert served(second) == served(fresh(loader.path))


def test_a_problem_in_a_changed_item_names_its_absolute_path(tmp_path: Path, key_file: Path) -> None:
    loader = Loader(tmp_path / "sluice.json")
    data = namespace(key_file)
    good = loader.load(data)
    bad = copy.deepcopy(data)
    bad["tenants"][1100]["keys"] = [{"value": 5}]
    with pytest.raises(config.ConfigError) as caught:
        loader.load(bad)
    assert [str(p) for p in caught.value.problems] == [
        "tenants[1100].keys[0].value: Expected `str | null`, got `int`"
    ]
    loader.runtime = good  # the reloader keeps serving the last good config
    data["tenants"][1100]["name"] = "renamed"
    assert served(loader.load(data)) == served(fresh(loader.path))


def test_a_failed_load_keeps_what_the_last_good_one_left(tmp_path: Path, key_file: Path) -> None:
    """Nothing of a load that failed is kept, so the next (YAML or JSON) checksum is exact."""
    loader = Loader(tmp_path / "sluice.json")
    data = namespace(key_file)
    good = loader.load(data)
    bad = copy.deepcopy(data)
    bad["routes"] = [{"model": f"new{i}", "backends": [{"provider": "b", "model": "z"}]} for i in range(50)]
    bad["tenants"][-1]["keys"] = [{"value": 5}]  # fails after the new routes decoded
    with pytest.raises(config.ConfigError):
        loader.load(bad)
    assert len(loader.reuse) == TENANTS + 2 + 2
    loader.runtime = good
    yaml_path = tmp_path / "sluice.yaml"
    yaml_path.write_text(yaml.safe_dump(bad | {"tenants": data["tenants"]}))
    from_yaml = compile_config(config.load(yaml_path, loader.reuse), good, loader.reuse)
    assert from_yaml.checksum == fresh(yaml_path).checksum
    again = loader.load(data)
    assert again.config.tenants[7] is good.config.tenants[7]


def test_config_items_are_frozen(tmp_path: Path, key_file: Path) -> None:
    """Reused items are shared by successive configs, so none may be changed in place."""
    runtime = Loader(tmp_path / "sluice.json").load(namespace(key_file))
    with pytest.raises(AttributeError):
        runtime.config.tenants[0].name = "other"  # type: ignore[misc]
