"""Figures, comparison rows, the printed table and the JSON file. No I/O apart from writing."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Failure", "Figure", "Row", "Target", "percentile", "render", "write_json"]


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 3 samples is their maximum)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


@dataclass(frozen=True)
class Figure:
    """One measured quantity: named statistics (``p50``, ``p99``, ``max``, ``value``) in a unit."""

    unit: str
    stats: dict[str, float]
    n: int
    note: str = ""

    @classmethod
    def latency(
        cls, seconds: Sequence[float], *, keys: Iterable[str] = ("p50", "p99"), note: str = ""
    ) -> Figure:
        """Milliseconds from samples in seconds."""
        ms = [s * 1000 for s in seconds]
        stats: dict[str, float] = {}
        for key in keys:
            stats[key] = max(ms) if key == "max" else percentile(ms, float(key[1:]))
        return cls("ms", stats, len(ms), note)

    @classmethod
    def single(cls, value: float, unit: str, *, n: int = 1, note: str = "") -> Figure:
        """One value (a mean, a count)."""
        return cls(unit, {"value": value}, n, note)

    def text(self) -> str:
        """E.g. ``p50 1.32 / p99 2.26 ms (n=200)``; the note is printed as a footnote."""
        parts = [_number(v) if k == "value" else f"{k} {_number(v)}" for k, v in self.stats.items()]
        return " / ".join(parts) + f" {self.unit} (n={self.n:,})"

    def as_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "n": self.n, "note": self.note, **self.stats}


@dataclass(frozen=True)
class Target:
    """A goal on our figure, e.g. ``p99 <= 100 ms`` or ``value >= 5,000 msg/s``.

    ``at_least`` turns the rule around (for throughput); ``source`` says where a limit taken
    from the same run comes from (e.g. ``"Postgres"``, ``"async + 0.2 ms"``).
    """

    stat: str
    limit: float
    unit: str
    at_least: bool = False
    source: str = ""

    def met(self, figure: Figure) -> bool:
        value = figure.stats[self.stat]
        return value >= self.limit if self.at_least else value <= self.limit

    def describe(self) -> str:
        op = ">=" if self.at_least else "<="
        stat = "" if self.stat == "value" else f"{self.stat} "
        source = f", {self.source}" if self.source else ""
        return f"{stat}{op} {_number(self.limit)} {self.unit}{source}"


@dataclass(frozen=True)
class Row:
    """Our figure against a baseline measured in the same run.

    Figures are "lower is better" unless ``higher`` (throughput), so the ratio is
    ``baseline / ours`` (``ours / baseline`` when ``higher``) on the statistic ``on``: above 1
    we win by that factor (``better`` word), below 1 we lose by its inverse (``worse`` word).
    """

    group: str
    name: str
    ours: Figure
    baseline_name: str
    baseline: Figure
    on: str = "p50"
    words: tuple[str, str] = ("faster", "slower")
    target: Target | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    higher: bool = False

    @property
    def ratio(self) -> float:
        ours = self.ours.stats[self.on]
        base = self.baseline.stats[self.on]
        if self.higher:
            ours, base = base, ours
        if ours <= 0:
            return math.inf
        return base / ours

    def ratio_text(self) -> str:
        ratio = self.ratio
        on = "" if self.on == "value" else f" ({self.on})"
        if math.isinf(ratio):
            return f"inf x {self.words[0]}{on}"
        if ratio >= 1:
            return f"{_number(ratio)}x {self.words[0]}{on}"
        if ratio <= 0:
            return f"inf x {self.words[1]}{on}"
        return f"{_number(1 / ratio)}x {self.words[1]}{on}"

    def target_text(self) -> str:
        if self.target is None:
            return ""
        state = "met" if self.target.met(self.ours) else "NOT met"
        return f"{state} ({self.target.describe()})"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": self.group,
            "name": self.name,
            "ours": self.ours.as_json(),
            "baseline_name": self.baseline_name,
            "baseline": self.baseline.as_json(),
            "ratio": {
                "definition": (
                    f"ours / baseline on {self.on} (higher is better for both)"
                    if self.higher
                    else f"baseline / ours on {self.on} (lower is better for both)"
                ),
                "value": None if math.isinf(self.ratio) else self.ratio,
                "text": self.ratio_text(),
            },
        }
        if self.target is not None:
            out["target"] = {
                "rule": self.target.describe(),
                "met": self.target.met(self.ours),
            }
        if self.extra:
            out["extra"] = self.extra
        return out


@dataclass(frozen=True)
class Failure:
    """A benchmark group that raised instead of producing rows."""

    group: str
    error: str


_HEADERS = ("#", "benchmark", "ours", "baseline", "baseline figure", "ours vs baseline", "target")


def render(rows: Sequence[Row], failures: Sequence[Failure]) -> str:
    """The aligned text table (one line per row), the figures' notes, then any failures."""
    notes: list[str] = []

    def cell(figure: Figure) -> str:
        if not figure.note:
            return figure.text()
        if figure.note not in notes:
            notes.append(figure.note)
        return f"{figure.text()} [{notes.index(figure.note) + 1}]"

    cells = [
        (
            r.group,
            r.name,
            cell(r.ours),
            r.baseline_name,
            cell(r.baseline),
            r.ratio_text(),
            r.target_text(),
        )
        for r in rows
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(_HEADERS)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [line(_HEADERS), line(["-" * w for w in widths])]
    previous = None
    for group, row in zip((r.group for r in rows), cells, strict=True):
        if previous is not None and group != previous:
            out.append("")
        previous = group
        out.append(line(row))
    if notes:
        out.append("")
        out.extend(f"[{i}] {note}" for i, note in enumerate(notes, 1))
    out.extend(f"FAILED {f.group}: {f.error}" for f in failures)
    return "\n".join(out)


def write_json(
    path: Path, meta: dict[str, Any], rows: Sequence[Row], failures: Sequence[Failure]
) -> None:
    """All rows with their raw numbers, for tracking runs over time."""
    document = {
        "meta": meta,
        "rows": [r.as_json() for r in rows],
        "failures": [{"group": f.group, "error": f.error} for f in failures],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
