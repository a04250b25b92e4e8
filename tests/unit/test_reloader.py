"""A reload (good or rejected) leaves the interpreter as it found it: GC on, default switch interval."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
from pathlib import Path
from typing import Any

from sluice_proxy.config import Reuse
from sluice_proxy.reload import RELOAD_NICE, Reloader, load_runtime
from sluice_proxy.state import Gateway

CONFIG: dict[str, Any] = {
    "providers": [{"name": "m", "type": "mock"}],
    "routes": [{"model": "one", "backends": [{"provider": "m", "model": "echo"}]}],
    "tenants": [{"name": "a", "keys": [{"value": "sk-test-key-1"}], "routes": ["*"]}],
}


async def test_reloads_restore_gc_and_the_switch_interval(tmp_path: Path) -> None:
    path = tmp_path / "sluice.json"
    path.write_text(json.dumps(CONFIG))
    gateway = Gateway(load_runtime(path, None, Reuse()))
    reloader = Reloader(gateway, path, Reuse())
    interval = sys.getswitchinterval()

    CONFIG["routes"][0]["model"] = "two"
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


def _nice(thread_id: int) -> int:
    # /proc/<pid>/task/<tid>/stat: the 19th field; the name in parentheses may contain spaces.
    return int(Path(f"/proc/self/task/{thread_id}/stat").read_text().rsplit(")", 1)[1].split()[16])


async def test_the_compile_runs_in_a_low_priority_thread_and_the_event_loop_does_not(tmp_path: Path) -> None:
    """Sharing a core, the kernel runs the event loop first: requests wait less during a reload."""
    path = tmp_path / "sluice.json"
    path.write_text(json.dumps(CONFIG))
    gateway = Gateway(load_runtime(path, None, Reuse()))
    reloader = Reloader(gateway, path, Reuse())
    loop_nice = _nice(threading.get_native_id())

    assert await reloader.reload("test")
    compilers = [t for t in threading.enumerate() if t.name.startswith("sluice-reload")]
    assert compilers and {_nice(t.native_id or 0) for t in compilers} == {RELOAD_NICE}
    assert _nice(threading.get_native_id()) == loop_nice != RELOAD_NICE
    reloader.close()
    await gateway.upstream.close()


async def test_a_replaced_config_is_freed_only_after_its_last_request(tmp_path: Path) -> None:
    """Freed in slices once unreferenced; a request still holding it keeps it whole meanwhile."""
    config = {
        **CONFIG,
        "tenants": [{"name": f"t{i}", "keys": [{"value": f"sk-key-{i:05d}"}]} for i in range(1200)],
    }
    path = tmp_path / "sluice.json"
    path.write_text(json.dumps(config))
    gateway = Gateway(load_runtime(path, None, Reuse()))
    reloader = Reloader(gateway, path, Reuse())
    in_flight = gateway.runtime  # what a request started before the reload holds
    tenants, tenant_list = in_flight.tenants_by_key_hash, in_flight.config.tenants
    path.write_text(json.dumps({**config, "tenants": config["tenants"][:1]}))
    assert await reloader.reload("test")
    assert reloader.retiring is not None
    done, _ = await asyncio.wait({reloader.retiring}, timeout=0.3)
    assert not done and len(tenants) == 1200, "a request in flight still reads its config"
    del in_flight
    await asyncio.wait_for(reloader.retiring, 10)
    assert not tenants and not tenant_list
    assert len(gateway.runtime.tenants_by_key_hash) == 1, "the new config is untouched"
    await gateway.upstream.close()


async def test_shutdown_cancels_the_freeing_of_held_configs(tmp_path: Path) -> None:
    path = tmp_path / "sluice.json"
    path.write_text(json.dumps(CONFIG))
    gateway = Gateway(load_runtime(path, None, Reuse()))
    reloader = Reloader(gateway, path, Reuse())
    held = [gateway.runtime]  # a long stream still on the first config
    for model in ("two", "three"):  # two reloads: both replaced configs wait for their requests
        path.write_text(json.dumps({**CONFIG, "routes": [{**CONFIG["routes"][0], "model": model}]}))
        assert await reloader.reload("test")
        held.append(gateway.runtime)
    waiting = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "retire"]  # type: ignore[union-attr]
    assert len(waiting) == 2 and not any(t.done() for t in waiting)
    reloader.close()
    await asyncio.wait(waiting, timeout=5)
    assert all(t.cancelled() for t in waiting)
    await gateway.upstream.close()
