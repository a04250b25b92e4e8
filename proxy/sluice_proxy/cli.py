"""`sluice-proxy`: flags and environment → a running gateway."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import build, config, logs, workers
from .embedded import LOCAL_DEV_KEY, embedded_config
from .runtime import RuntimeConfig, compile_config

# Nothing imported above may import prometheus_client: with --workers the metrics
# directory must be set first (see workers.prepare_metrics_dir).


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="sluice-proxy",
        description="OpenAI-compatible AI gateway. Without --config it serves an embedded default "
        "(a mock echo model, plus OpenAI/Anthropic/Gemini when their API keys are set).",
    )
    parser.add_argument(
        "--config",
        "-c",
        default=env.get("SLUICE_CONFIG"),
        help="path of the YAML configuration (env SLUICE_CONFIG); hot-reloaded on change and SIGHUP",
    )
    parser.add_argument("--host", default=env.get("SLUICE_HOST"), help="listen address (env SLUICE_HOST)")
    parser.add_argument(
        "--port", type=int, default=env.get("SLUICE_PORT"), help="listen port (env SLUICE_PORT)"
    )
    parser.add_argument(
        "--log-level",
        default=env.get("SLUICE_LOG_LEVEL"),
        choices=["debug", "info", "warning", "error"],
        help="(env SLUICE_LOG_LEVEL)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env.get("SLUICE_WORKERS", "1")),
        help="worker processes sharing the port, one per core is typical (env SLUICE_WORKERS; default 1)",
    )
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    parser.add_argument(
        "--version",
        action="version",
        version=f"sluice-proxy {build.VERSION} ({'compiled' if build.COMPILED else 'interpreted'})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    path = Path(args.config) if args.config else None
    reuse = config.Reuse()
    try:
        waiting = path is not None and not path.exists()
        if path is None:
            cfg = embedded_config(os.environ)
        elif waiting:
            cfg = config.SluiceConfig()  # serves nothing; /readyz says 503 until the file appears
        else:
            cfg = config.load(path, reuse)
        runtime = compile_config(cfg, reuse=reuse)
    except config.ConfigError as error:
        print(f"sluice-proxy: {error.source} is invalid:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if args.check and waiting:
        print(f"sluice-proxy: {path} does not exist", file=sys.stderr)
        return 2
    if args.check:
        print(f"{path or 'embedded default'}: ok (checksum {runtime.checksum})")
        return 0
    logs.setup(args.log_level or cfg.server.log_level)
    host = args.host or cfg.listen.host
    port = args.port if args.port is not None else cfg.listen.port
    if path is None:
        print(
            f"sluice-proxy: no --config given; serving the embedded default on http://{host}:{port}\n"
            f"  local dev key: {LOCAL_DEV_KEY}\n"
            f"  try: curl http://{host}:{port}/v1/chat/completions -H 'Authorization: Bearer {LOCAL_DEV_KEY}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"model": "mock-echo", "messages": [{"role": "user", "content": "hello"}]}\'',
            file=sys.stderr,
            flush=True,
        )
    if args.workers > 1:
        workers.prepare_metrics_dir()
        return workers.supervise(
            args.workers,
            lambda index: _serve(runtime, path, host, port, reuse_port=True, waiting=waiting, reuse=reuse),
        )
    if waiting:
        print(
            f"sluice-proxy: {path} does not exist yet; serving 503 until it appears",
            file=sys.stderr,
            flush=True,
        )
    _serve(runtime, path, host, port, reuse_port=False, waiting=waiting, reuse=reuse)
    return 0


# aiohttp's default of 128 drops connections when thousands of clients connect at once.
LISTEN_BACKLOG = 4096


def _serve(
    runtime: RuntimeConfig,
    path: Path | None,
    host: str,
    port: int,
    *,
    reuse_port: bool,
    waiting: bool,
    reuse: config.Reuse,
) -> None:
    from aiohttp import web

    from .app import make_app

    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        pass
    app = make_app(runtime, config_path=path, waiting=waiting, reuse=reuse)
    # What start-up built (modules, the compiled config) lives as long as the process: keep it
    # out of the cyclic collector's full scans, which otherwise stall requests on big configs.
    gc.freeze()
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        handle_signals=True,
        shutdown_timeout=30,
        backlog=LISTEN_BACKLOG,
        reuse_port=reuse_port,
    )
