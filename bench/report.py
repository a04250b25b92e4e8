"""Rows of figures, the one table they make, and the JSON record of a run."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    """One figure measured on up to three targets (direct, bare, sluice)."""

    scenario: str
    metric: str
    direct: float | None = None
    bare: float | None = None
    sluice: float | None = None
    added: bool = False
    """Whether ``sluice - direct`` means something (latencies, memory), not only the ratios."""
    note: str = ""

    def ratio(self, reference: float | None) -> float | None:
        if self.sluice is None or not reference:
            return None
        return self.sluice / reference

    @property
    def over_direct(self) -> float | None:
        if not self.added or self.sluice is None or self.direct is None:
            return None
        return self.sluice - self.direct


@dataclass
class Record:
    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def number(value: float | None) -> str:
    if value is None:
        return "–"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def table(rows: list[Row]) -> str:
    """A Markdown table: one line per figure, with Sluice's cost over direct and its ratios."""
    lines = [
        "| scenario | metric | direct | bare | sluice | sluice − direct | ÷ bare | ÷ direct |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        metric = f"{row.metric} ({row.note})" if row.note else row.metric
        cells = [
            row.scenario,
            metric,
            number(row.direct),
            number(row.bare),
            number(row.sluice),
            number(row.over_direct),
            ratio(row.ratio(row.bare)),
            ratio(row.ratio(row.direct)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _row_document(row: Row) -> dict[str, Any]:
    return {
        **asdict(row),
        "sluice_minus_direct": row.over_direct,
        "sluice_over_bare": row.ratio(row.bare),
        "sluice_over_direct": row.ratio(row.direct),
    }


def save(record: Record) -> Path:
    """Write ``results/<UTC timestamp>-<short sha>.json``; returns its path."""
    RESULTS.mkdir(exist_ok=True)
    stamp = record.started.strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-{record.machine.get('commit_short', 'unknown')}.json"
    document = {
        "started": record.started.isoformat(),
        "machine": record.machine,
        "settings": record.settings,
        "rows": [_row_document(row) for row in record.rows],
        "details": record.details,
        "table": table(record.rows),
    }
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path
