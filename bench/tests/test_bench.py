"""The bench's own parts against real processes: the mock upstream, the pass-through, the parsers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench import sluice_config
from bench.__main__ import chosen_scenarios
from bench.loadgen import percentiles, run_sequential
from bench.processes import Service, free_port, python, start
from bench.scenarios.instructions import read_instructions
from bench.scenarios.profile import top_functions
from bench.stack import passthrough_argv
from bench.wire import ResponseParser, connect, exchange, render_post
from sluice_proxy.config import loads
from sluice_proxy.runtime import compile_config

STREAM_BODY = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
JSON_BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "upstream.log"
    service = start(
        "upstream", [python(), "-m", "bench.upstream", "--port", str(port)], port=port, cpus=None, log=log
    )
    yield service
    service.stop()


@pytest.fixture(scope="module")
def passthrough(upstream: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    port = free_port()
    log = tmp_path_factory.mktemp("bare") / "bare.log"
    service = start("bare", passthrough_argv(port, upstream.port), port=port, cpus=None, log=log)
    yield service
    service.stop()


def _events(body: bytes) -> list[bytes]:
    return [event for event in body.split(b"\n\n") if event.startswith(b"data: ")]


def _post(port: int, path: str, body: bytes) -> ResponseParser:
    with connect(port) as sock:
        return exchange(sock, render_post(port, path, body), keep_body=True)


def test_parser_reads_a_chunked_response_fed_byte_by_byte() -> None:
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    parser = ResponseParser(keep_body=True)
    for index in range(len(response)):
        assert not parser.done
        parser.feed(response[index : index + 1])
    assert (parser.status, bytes(parser.body), parser.done) == (200, b"hello world", True)


def test_parser_reads_a_content_length_response() -> None:
    parser = ResponseParser(keep_body=True)
    parser.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nab")
    assert not parser.done and parser.got_body
    parser.feed(b"c")
    assert (parser.status, bytes(parser.body), parser.done) == (404, b"abc", True)


def test_upstream_streams_24_chunks_then_usage_and_done(upstream: Service) -> None:
    events = _events(bytes(_post(upstream.port, "/v1/chat/completions", STREAM_BODY).body))
    assert sum(b'"content":" tok"' in e for e in events) == 24
    assert b'"usage":{"prompt_tokens":20,"completion_tokens":24' in events[-2]
    assert events[-1] == b"data: [DONE]"


def test_upstream_long_mode_sends_the_requested_chunk_count(upstream: Service) -> None:
    events = _events(bytes(_post(upstream.port, "/long/7/100/v1/chat/completions", STREAM_BODY).body))
    assert sum(b'"content":" tok"' in e for e in events) == 7
    assert events[-1] == b"data: [DONE]"


def test_upstream_answers_json_on_a_keep_alive_connection(upstream: Service) -> None:
    request = render_post(upstream.port, "/v1/chat/completions", JSON_BODY)
    result = run_sequential(upstream.port, request, total=50, seconds=30)
    assert result["completed"] == 50 and result["errors"] == {}


def test_passthrough_forwards_streams_and_json_unchanged(upstream: Service, passthrough: Service) -> None:
    for path, body in [("/v1/chat/completions", STREAM_BODY), ("/long/3/30/v1/chat/completions", STREAM_BODY),
                       ("/v1/chat/completions", JSON_BODY)]:  # fmt: skip
        assert _post(passthrough.port, path, body).body == _post(upstream.port, path, body).body


def test_bench_config_is_accepted_by_the_proxy() -> None:
    config = sluice_config.render(9000, 6379, 100, 5000, routes=5, tenants=20)
    runtime = compile_config(loads(yaml.safe_dump(config)))
    assert len(runtime.tenants_by_key_hash) == 21
    assert sluice_config.LONG_MODEL in runtime.routes


def test_written_config_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sluice.yaml"
    sluice_config.write(path, {"a": 1})
    sluice_config.write(path, {"a": 2})
    assert yaml.safe_load(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["sluice.yaml"]


def test_profile_parser_ranks_functions_by_self_time() -> None:
    raw = "process 1;main (a.py);handle (b.py);parse (c.py) 6\nmain (a.py);handle (b.py) 3\nmain (a.py) 1\n"
    samples, top = top_functions(raw)
    assert samples == 10
    assert top[0] == ("parse (c.py)", 60.0, 60.0)
    assert ("handle (b.py)", 30.0, 90.0) in top
    _, mine = top_functions(raw, within="b.py")
    assert mine == [("handle (b.py)", 30.0, 90.0)]


def test_percentiles_use_nearest_rank_in_milliseconds() -> None:
    figures = percentiles([i / 1000 for i in range(1, 101)])
    assert figures["p50"] == pytest.approx(50) and figures["p99"] == pytest.approx(99)
    assert figures["max"] == pytest.approx(100)


def test_unlimited_config_has_no_redis_limits_or_budgets() -> None:
    config = sluice_config.render(9000, 6379, 100, 5000, tenants=2, limited=False)
    runtime = compile_config(loads(yaml.safe_dump(config)))
    assert "redis" not in config
    assert all(t.spec.limits is None and t.spec.budget is None for t in runtime.tenants_by_key_hash.values())


def test_cachegrind_summary_gives_the_instruction_count(tmp_path: Path) -> None:
    report = tmp_path / "cachegrind.txt"
    report.write_text(
        "==12== Cachegrind, a cache and branch-prediction profiler\n==12== \n==12== I   refs:      2,210,816,829\n"
    )
    assert read_instructions(report) == 2_210_816_829


def test_the_instruction_count_runs_only_when_named() -> None:
    assert "instructions" not in chosen_scenarios(None)
    assert chosen_scenarios("overhead, instructions") == ["overhead", "instructions"]
