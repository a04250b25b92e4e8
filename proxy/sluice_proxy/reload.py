"""Hot reload: watch the config file (and the secret files it names), reload on change or SIGHUP.

Kubernetes updates a mounted ConfigMap by swapping the ``..data`` symlink of its
directory, so the watcher compares the resolved path, inode, size and mtime of every
watched file rather than relying on events on the file itself. A new config is parsed,
validated and compiled off the event loop, then swapped atomically; an invalid one is
logged, counted and ignored, and the last good one keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from . import config, metrics
from .logs import LOG
from .runtime import RuntimeConfig, compile_config
from .state import GATEWAY, Gateway

POLL_INTERVAL = 1.0
RELOAD_SWITCH_INTERVAL = 0.0005
RETIRE_SLICE = 500
"""Entries of a replaced config freed per event-loop turn."""
RETIRE_WAIT = 600.0
"""How long a replaced config waits for its last requests (long streams) before refcounting frees it."""

RELOAD_NICE = 19
"""The compile thread's nice value: on the event loop's core the kernel runs the loop first."""

Fingerprint = tuple[tuple[str, int, int, int], ...]


def fingerprint(paths: Iterable[Path]) -> Fingerprint:
    prints = []
    for path in sorted(paths):
        try:
            st = path.stat()
            prints.append((os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            prints.append((str(path), 0, 0, 0))
    return tuple(prints)


def _lower_priority() -> None:
    # Linux takes a thread id here; elsewhere it names no process and the call fails harmlessly.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RELOAD_NICE)


def load_runtime(path: Path, previous: RuntimeConfig | None, reuse: config.Reuse) -> RuntimeConfig:
    """Parse, validate and compile ``path``, reusing what did not change since ``previous``.

    Raises ConfigError naming every problem.
    """
    return compile_config(config.load(path, reuse), previous, reuse)


async def retire(runtime: RuntimeConfig) -> None:
    """Free a replaced config a slice at a time, once no request holds it any more.

    Dropped at once, a 10,000-tenant config goes in one deallocation cascade that holds the
    GIL for ~6 ms, and every request waits for it; slices a loop turn apart do not.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETIRE_WAIT
    # This frame's variable and getrefcount's own argument; any other is a request in flight.
    while sys.getrefcount(runtime) > 2:
        if loop.time() > deadline:
            return  # still held: plain refcounting frees it whenever its last holder lets go
        await asyncio.sleep(0.05)
    for mapping in (runtime.tenants_by_key_hash, runtime.routes):
        while mapping:
            for key in list(itertools.islice(mapping, RETIRE_SLICE)):
                del mapping[key]
            await asyncio.sleep(0)
    for items in (runtime.config.tenants, runtime.config.routes):
        while items:
            del items[-RETIRE_SLICE:]
            await asyncio.sleep(0)


class Reloader:
    def __init__(self, gateway: Gateway, path: Path, reuse: config.Reuse) -> None:
        self.gateway = gateway
        self.path = path
        self.reuse = reuse
        self._compiler = ThreadPoolExecutor(1, "sluice-reload", initializer=_lower_priority)
        self._lock = asyncio.Lock()
        self._seen = fingerprint(self._watched())
        self.retiring: asyncio.Task[None] | None = None
        """The freeing of the config the last reload replaced."""
        self._retiring: set[asyncio.Task[None]] = set()
        """Every freeing still running (one may wait minutes for a long stream): held, and cancelled at shutdown."""

    def _watched(self) -> set[Path]:
        return {self.path, *self.gateway.runtime.secret_files}

    async def reload(self, why: str) -> bool:
        async with self._lock:
            self._seen = fingerprint(self._watched())
            loop = asyncio.get_running_loop()
            # The compile thread and the event loop share the GIL; a short switch interval
            # while it runs keeps requests from waiting 5 ms (the default) at every hand-over.
            switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(RELOAD_SWITCH_INTERVAL)
            # A compile allocates a few hundred thousand objects; the cyclic collector would
            # walk the whole heap several times meanwhile, holding the GIL for tens of ms.
            gc.disable()
            started = loop.time()
            try:
                runtime = await loop.run_in_executor(
                    self._compiler, load_runtime, self.path, self.gateway.runtime, self.reuse
                )
                # The new config lives until the next reload: freeze it out of the collector's
                # scans before the collector is back, or its first full pass walks all of it.
                gc.freeze()
            except config.ConfigError as error:
                took = loop.time() - started
                metrics.CONFIG_RELOADS.labels("failure").inc()
                metrics.CONFIG_RELOAD_DURATION.labels("failure").observe(took)
                self.gateway.config_error = str(error)
                LOG.error(
                    "config rejected; still serving the last good one",
                    extra={
                        "path": str(self.path),
                        "trigger": why,
                        "problems": [str(p) for p in error.problems],
                        "serving": self.gateway.runtime.checksum,
                        "duration_ms": round(took * 1000, 1),
                    },
                )
                return False
            finally:
                sys.setswitchinterval(switch_interval)
                gc.enable()
            took = loop.time() - started
            previous = self.gateway.runtime.checksum
            # No local variable may hold the old config: retire() waits until only it does.
            self.retiring = asyncio.get_running_loop().create_task(retire(self.gateway.runtime))
            self._retiring.add(self.retiring)
            self.retiring.add_done_callback(self._retiring.discard)
            self.gateway.swap(runtime)
            self._seen = fingerprint(self._watched())
            metrics.CONFIG_RELOADS.labels("success").inc()
            metrics.CONFIG_RELOAD_DURATION.labels("success").observe(took)
            LOG.info(
                "config reloaded",
                extra={
                    "path": str(self.path),
                    "trigger": why,
                    "checksum": runtime.checksum,
                    "previous": previous,
                    "duration_ms": round(took * 1000, 1),
                },
            )
            return True

    def close(self) -> None:
        """Stop freeing replaced configs: the process is ending and frees everything anyway."""
        for task in self._retiring:
            task.cancel()
        self._compiler.shutdown(wait=False, cancel_futures=True)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            if fingerprint(self._watched()) != self._seen:
                await self.reload("file change")


def reload_context(path: Path, reuse: config.Reuse) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context running the watcher and the SIGHUP handler."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        reloader = Reloader(app[GATEWAY], path, reuse)
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[bool]] = set()

        def on_sighup() -> None:
            task = loop.create_task(reloader.reload("SIGHUP"))
            pending.add(task)
            task.add_done_callback(pending.discard)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        watcher = loop.create_task(reloader.watch())
        yield
        watcher.cancel()
        reloader.close()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGHUP)

    return context
