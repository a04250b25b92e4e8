"""Config validation names the path, the problem and the fix."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from sluice_proxy import config
from sluice_proxy.embedded import embedded_config
from sluice_proxy.runtime import compile_config


def problems(text: str) -> list[str]:
    with pytest.raises(config.ConfigError) as caught:
        compile_config(config.loads(text))
    return [str(p) for p in caught.value.problems]


BASE = "providers: [{name: openai-main, type: openai, apiKey: {value: k}}, {name: claude, type: anthropic}]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BASE + "routes: [{model: a, backends: [{provider: opnai, model: m}]}]",
            "routes[0].backends[0].provider: unknown provider 'opnai' (known: openai-main, claude)",
        ),
        (
            BASE + "routes: [{model: a, backends: [{provider: claude, model: m, weight: -1}]}]",
            "routes[0].backends[0].weight: Expected `int` >= 0",
        ),
        (
            BASE + "routes: [{model: a, backends: [{provider: claude, model: m, wieght: 1}]}]",
            "routes[0].backends[0]: Object contains unknown field `wieght`",
        ),
        (
            BASE + "routes: [{model: a, timeout: soon, backends: [{provider: claude, model: m}]}]",
            "routes[0].timeout: Expected `str` matching regex",
        ),
        (
            BASE
            + "routes: [{model: a, backends: [{provider: claude, model: m}, {provider: claude, model: m}]}]",
            "routes[0].backends[1]: duplicate backend claude/m",
        ),
        (
            BASE + "routes: [{model: a, backends: [{provider: claude, model: m, weight: 0}]}]",
            "routes[0].backends: at least one backend needs a weight above 0",
        ),
        (
            "providers: [{name: az, type: azure-openai, baseURL: 'https://x.openai.azure.com'}]",
            "providers[0].apiVersion: azure-openai needs apiVersion",
        ),
        (
            "providers: [{name: p, type: openai, headers: {Host: elsewhere.example}}]",
            "providers[0].headers.Host: is set by the gateway itself; remove it from headers",
        ),
        (
            'providers: [{name: p, type: openai, headers: {X-Team: "a\\r\\nX-Evil: 1"}}]',
            "providers[0].headers.X-Team: header names are tokens and values have no line breaks",
        ),
        (
            "providers: [{name: p, type: openai, apiKey: {env: A, value: b}}]",
            "providers[0].apiKey: set exactly one of env, file, value (got env, value)",
        ),
        (
            "providers: [{name: p, type: openai, apiKey: {env: SLUICE_TEST_SURELY_UNSET}}]",
            "providers[0].apiKey.env: environment variable SLUICE_TEST_SURELY_UNSET is not set",
        ),
        ("providers: [{name: p, type: opnai}]", "providers[0].type: Invalid enum value 'opnai'"),
        ("tenants: [{name: t, keys: [{sha256: nothex}]}]", "tenants[0].keys[0].sha256"),
        (
            "tenants: [{name: t, keys: [{value: sk-12345678}], routes: [nope]}]",
            "tenants[0].routes[0]: unknown route 'nope'",
        ),
        (
            "tenants: [{name: t, keys: [{value: sk-12345678}]}, {name: u, keys: [{value: sk-12345678}]}]",
            "tenants[1].keys[0]: the same key is already given to tenant 't'",
        ),
        (
            "tenants: [{name: t, keys: [{value: sk-12345678}],"
            " modelLimits: [{model: m, requestsPerMinute: 5}, {model: m, tokensPerMinute: 9}]}]",
            "tenants[0].modelLimits[1].model: model 'm' has limits already; put them in one entry",
        ),
        ("redis: {url: 'redis://r:6379', timeout: 0s}", "redis.timeout: must be greater than 0"),
        (
            "redis: {url: 'http://:hunter2@r:6379'}",
            "redis.url: must start with redis://, rediss:// or unix://, not 'http:'",
        ),
        ("redis: {url: 'redis://r:63x9'}", "redis.url: has a port that is not a number"),
    ],
)
def test_errors_name_the_path(text: str, expected: str) -> None:
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_all_problems_are_reported_at_once() -> None:
    text = (
        BASE
        + "routes: [{model: a, backends: [{provider: x, model: m}]}, {model: b, backends: [{provider: y, model: m}]}]"
    )
    assert len(problems(text)) == 2


def test_embedded_default_adds_providers_for_keys_that_are_set() -> None:
    plain = compile_config(embedded_config({}))
    assert plain.route_for("anything").tiers[0][0].target.provider == "mock"  # type: ignore[union-attr]
    with_keys = compile_config(embedded_config({"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-y"}))
    assert with_keys.route_for("gpt-4o-mini").tiers[0][0].target.provider == "openai"  # type: ignore[union-attr]
    assert with_keys.route_for("claude-sonnet-4-5").tiers[0][0].target.provider == "anthropic"  # type: ignore[union-attr]
    assert with_keys.route_for("mock-echo").tiers[0][0].target.provider == "mock"  # type: ignore[union-attr]


def test_keys_are_held_only_as_hashes() -> None:
    runtime = compile_config(config.loads("tenants: [{name: t, keys: [{value: sk-plaintext-key}]}]"))
    assert "sk-plaintext-key" not in runtime.tenants_by_key_hash
    assert len(next(iter(runtime.tenants_by_key_hash))) == 64


def test_durations() -> None:
    assert config.parse_duration("1m30s") == 90
    assert config.parse_duration("200ms") == pytest.approx(0.2)


def test_json_and_gzipped_configs_load_like_yaml() -> None:
    import gzip

    import orjson

    data = {
        "providers": [{"name": "m", "type": "mock"}],
        "routes": [{"model": "x", "backends": [{"provider": "m", "model": "y"}]}],
    }
    from_json = config.loads(orjson.dumps(data))
    from_gzip = config.loads(gzip.compress(orjson.dumps(data)))
    assert from_json == from_gzip and from_json.routes[0].model == "x"
    with pytest.raises(config.ConfigError, match="not valid gzip"):
        config.loads(b"\x1f\x8b broken")
    with pytest.raises(config.ConfigError, match="not valid JSON"):
        config.loads(b'{"providers": [')


BASE_DATA: dict[str, Any] = {
    "providers": [{"name": "m", "type": "mock"}],
    "routes": [{"model": "a", "backends": [{"provider": "m", "model": "x"}]}],
}
MANY_TENANTS = [{"name": f"t{i}", "keys": [{"value": f"sk-key-{i:06d}"}]} for i in range(1200)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {**BASE_DATA, "tenants": [*MANY_TENANTS, {"name": "bad", "keys": [{"value": 5}]}]},
            "tenants[1200].keys[0].value: Expected `str | null`, got `int`",
        ),
        ({**BASE_DATA, "listen": {"port": "x"}}, "listen.port: Expected `int`, got `str`"),
        ({**BASE_DATA, "listen": 5}, "listen: Expected `object`, got `int`"),
        ({**BASE_DATA, "bogus": 1}, "config: Object contains unknown field `bogus`"),
        ({**BASE_DATA, "tenants": 5}, "tenants: Expected `array`, got `int`"),
        (
            {
                **BASE_DATA,
                "routes": [{"model": "a", "backends": [{"provider": "m", "model": "x", "weight": -1}]}],
            },
            "routes[0].backends[0].weight: Expected `int` >= 0",
        ),
    ],
)
def test_json_and_yaml_name_the_same_problem(data: dict[str, Any], expected: str) -> None:
    """JSON is decoded in slices (see codec.JSON_SLICE); its errors still name the absolute path."""
    for text in (json.dumps(data), yaml.safe_dump(data)):
        with pytest.raises(config.ConfigError) as caught:
            config.loads(text)
        assert [str(p) for p in caught.value.problems] == [expected]


def test_json_in_slices_loads_every_tenant() -> None:
    loaded = config.loads(json.dumps({**BASE_DATA, "tenants": MANY_TENANTS}))
    assert [t.name for t in loaded.tenants] == [t["name"] for t in MANY_TENANTS]
    assert loaded == config.loads(yaml.safe_dump({**BASE_DATA, "tenants": MANY_TENANTS}))


def test_the_checksum_follows_content_in_every_slice() -> None:
    """Hashed in slices like JSON decoding; the same content hashes alike, any change anywhere shows."""
    data = {**BASE_DATA, "tenants": MANY_TENANTS}
    same = config.checksum(config.loads(json.dumps(data)))
    assert same == config.checksum(config.loads(yaml.safe_dump(data)))
    late = [*MANY_TENANTS[:-1], {**MANY_TENANTS[-1], "routes": ["a"]}]  # in the last slice only
    assert config.checksum(config.loads(json.dumps({**data, "tenants": late}))) != same
    assert config.checksum(config.loads(json.dumps({**data, "listen": {"port": 9999}}))) != same
