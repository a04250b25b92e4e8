"""Every Grafana query asks for a series the proxy exports (names parsed from sluice_proxy/metrics.py)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chart.manifests import CHART, ROOT

DASHBOARD = CHART / "files" / "dashboards" / "sluice.json"
# Series each prometheus_client type exposes for a metric registered as `name`.
SUFFIXES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count")}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev",
    "rate", "irate", "increase", "delta", "histogram_quantile", "label_values", "clamp_min", "clamp_max",
    "abs", "vector", "scalar", "time", "sort", "sort_desc", "absent", "max_over_time", "avg_over_time",
}  # fmt: skip
_STRIP = re.compile(
    r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]'  # strings, label matchers, ranges
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"  # label lists
)
_LABEL_VALUES = re.compile(r"label_values\(\s*([^,)]+),[^)]*\)")  # Grafana: label_values(metric, label)
_NAME = re.compile(r"(?<![$\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")


def exported_series() -> set[str]:
    """Series names the proxy exposes: metrics.py's Counter/Gauge/Histogram declarations plus suffixes."""
    tree = ast.parse((ROOT / "proxy" / "sluice_proxy" / "metrics.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in SUFFIXES
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            base = str(node.args[0].value).removesuffix("_total")
            names.update(base + suffix for suffix in SUFFIXES[node.func.id])
    return names


def metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that are neither functions, keywords, labels nor numbers."""
    bare = _STRIP.sub(" ", _LABEL_VALUES.sub(r"\1", expr))
    return {name for name in _NAME.findall(bare) if name not in PROMQL_WORDS}


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"${variable['name']}", variable["query"]["query"]


def test_metric_names_are_found_in_promql() -> None:
    expr = 'histogram_quantile(0.9, sum by (le, model) (rate(a_bucket{x=~"y|z"}[5m]))) / on(x) b_total * 3600'
    assert metric_names(expr) == {"a_bucket", "b_total"}


def test_exported_series_are_parsed_from_metrics_py() -> None:
    series = exported_series()
    assert {
        "sluice_requests_total",
        "gen_ai_server_request_duration_seconds_bucket",
        "sluice_budget_used_ratio",
    } <= series
    assert "sluice_requests" not in series


DASHBOARD_JSON = json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize(
    ("title", "expr"), list(queries(DASHBOARD_JSON)), ids=[t for t, _ in queries(DASHBOARD_JSON)]
)
def test_query_uses_only_exported_metrics(title: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{title}: no metric found in {expr!r}"
    unknown = names - exported_series()
    assert not unknown, f"{title}: {sorted(unknown)} are not exported by sluice_proxy/metrics.py"


def test_dashboard_covers_what_operators_ask_about() -> None:
    used = set().union(*(metric_names(expr) for _, expr in queries(DASHBOARD_JSON)))
    wanted = {
        "sluice_requests_total",  # requests and errors
        "gen_ai_server_request_duration_seconds_bucket",  # latency
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "sluice_tokens_total",
        "sluice_cost_usd_total",
        "sluice_ratelimit_rejections_total",
        "sluice_budget_used_ratio",
        "sluice_fallbacks_total",
        "sluice_cache_requests_total",
        "sluice_config_reload_duration_seconds_bucket",
    }
    assert wanted <= used, f"no panel for {sorted(wanted - used)}"
    ids = [panel["id"] for panel in DASHBOARD_JSON["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
