"""A reload (good or rejected) leaves the interpreter as it found it: GC on, default switch interval."""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

from sluice_proxy.reload import Reloader, load_runtime
from sluice_proxy.state import Gateway

CONFIG = {
    "providers": [{"name": "m", "type": "mock"}],
    "routes": [{"model": "one", "backends": [{"provider": "m", "model": "echo"}]}],
    "tenants": [{"name": "a", "keys": [{"value": "sk-test-key-1"}], "routes": ["*"]}],
}


async def test_reloads_restore_gc_and_the_switch_interval(tmp_path: Path) -> None:
    path = tmp_path / "sluice.json"
    path.write_text(json.dumps(CONFIG))
    gateway = Gateway(load_runtime(path))
    reloader = Reloader(gateway, path)
    interval = sys.getswitchinterval()

    CONFIG["routes"][0]["model"] = "two"  # type: ignore[index]
    path.write_text(json.dumps(CONFIG))
    assert await reloader.reload("test")
    assert set(gateway.runtime.routes) == {"two"}
    assert gc.isenabled() and sys.getswitchinterval() == interval

    path.write_text('{"routes": [{"model": "x", "backends": [{"provider": "nope", "model": "m"}]}]}')
    assert not await reloader.reload("test")
    assert set(gateway.runtime.routes) == {"two"}, "a rejected config keeps the last good one"
    assert "unknown provider 'nope'" in (gateway.config_error or "")
    assert gc.isenabled() and sys.getswitchinterval() == interval
    await gateway.upstream.close()
