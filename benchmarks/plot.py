"""The peers' chart for the docs: ``python -m benchmarks.plot RESULTS.json PATH.png``.

Also drawn by ``python -m benchmarks --plot PATH`` at the end of a run that included the
``peers`` group. Left: p50 latency of each scenario (log scale, lower is better); right:
messages written per second with many sessions at once (higher is better); one bar per
store. Needs matplotlib (the ``bench`` dependency group).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .peers import GROUP, PER_TOPIC, POSTGRES, REDIS, SCENARIOS, SHARED, table

__all__ = ["draw"]

_STORES = (SHARED, PER_TOPIC, POSTGRES, REDIS)
_COLOURS = {SHARED: "#1f6feb", PER_TOPIC: "#8ab4f8", POSTGRES: "#336791", REDIS: "#d82c20"}


def _figures(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{scenario: {store: figure}}`` from the peers group's rows (JSON form)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        extra = row.get("extra") or {}
        if row.get("group") != GROUP or "scenario" not in extra:
            continue
        found = out.setdefault(extra["scenario"], {})
        found[extra["ours_store"]] = row["ours"]
        found[extra["peer"]] = row["baseline"]
    return out


def draw(rows: Sequence[dict[str, Any]], path: Path, title: str = "") -> str:
    """Draw the peers' rows to ``path``; a line saying what was done."""
    figures = _figures(rows)
    if not figures:
        return f"no plot: the run has no rows of the peers group ({path} not written)"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"no plot: matplotlib is not installed (pip install matplotlib) for {path}"
    labels = {key: label for key, label, _ in SCENARIOS}
    sessions = next(
        (
            r["ours"]["n"] // 10
            for r in rows
            if (r.get("extra") or {}).get("scenario") == "burst_new"
        ),
        200,
    )
    latency = [k for k, _, higher in SCENARIOS if not higher and k in figures]
    rate = [k for k, _, higher in SCENARIOS if higher and k in figures]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [len(latency) or 1, len(rate) or 1]}
    )
    width = 0.8 / len(_STORES)
    for axis, keys, stat in ((left, latency, "p50"), (right, rate, "value")):
        for i, store in enumerate(_STORES):
            xs, ys = [], []
            for j, key in enumerate(keys):
                figure = figures[key].get(store)
                if figure is not None:
                    xs.append(j + (i - (len(_STORES) - 1) / 2) * width)
                    ys.append(figure[stat])
            axis.bar(xs, ys, width, label=store, color=_COLOURS[store])
        names = [labels[k].format(sessions=sessions).replace(" (", "\n(") for k in keys]
        axis.set_xticks(range(len(keys)), [_wrap(n) for n in names], fontsize=8)
    left.set(yscale="log", ylabel="p50 latency, ms (log; lower is better)")
    left.set_title("Latency per call")
    right.set(ylabel="messages written per second (higher is better)")
    right.set_title("Many sessions at once")
    left.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"


def _wrap(text: str, width: int = 22) -> str:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plot",
        description="Draw the peers' chart (and print their table) from a --json results file.",
    )
    parser.add_argument("results", type=Path, help="a file written by python -m benchmarks --json")
    parser.add_argument("plot", type=Path, help="the PNG to write")
    args = parser.parse_args(argv)
    document = json.loads(args.results.read_text(encoding="utf-8"))
    meta = document.get("meta", {})
    title = f"{meta.get('started', '')}, {'quick' if meta.get('quick') else 'full'} run"
    print(draw(document["rows"], args.plot, title))
    print(table(document["rows"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
