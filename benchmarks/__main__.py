"""``python -m benchmarks [--quick] [--json PATH] [--plot PATH] [--only GROUP[,GROUP...]]``."""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from . import (
    add_message,
    cold_start,
    from_beginning,
    full_read,
    idle_read,
    langgraph_saver,
    last_n,
    live_tail,
    loop_lag,
    peers,
    scale,
    sync_overhead,
    throughput,
)
from ._context import Context, bootstrap_from_env, count_topics, delete_run_topics
from ._report import Failure, Row, render, write_json

GROUPS: dict[str, ModuleType] = {
    "messages": idle_read,
    "add": add_message,
    "beginning": from_beginning,
    "last-n": last_n,
    "tail": live_tail,
    "scale": scale,
    "loop": loop_lag,
    "peers": peers,
    "throughput": throughput,
    "full-read": full_read,
    "sync": sync_overhead,
    "cold-start": cold_start,
    "langgraph": langgraph_saver,
}


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _cleanup(ctx: Context) -> None:
    try:
        _say(f"    cleanup: {delete_run_topics(ctx)}")
    except Exception as exc:
        _say(f"cleanup FAILED, delete topics starting with {ctx.prefix!r} by hand: {exc!r}")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="aiokafka-history figures as ratios against baselines measured in the same "
        "run. Needs $KAFKA_BOOTSTRAP_SERVERS of a local broker (python -m kafkalocal exec).",
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PATH",
        help="draw the peers group's rows to this PNG (needs matplotlib)",
    )
    parser.add_argument(
        "--only",
        metavar="GROUP[,GROUP...]",
        help=f"run only these groups, of: {', '.join(GROUPS)}",
    )
    args = parser.parse_args(argv)
    chosen = list(GROUPS) if args.only is None else [g.strip() for g in args.only.split(",")]
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    args.groups = chosen
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen groups, print the table; exit status 1 if any group failed."""
    args = _parse(argv)
    ctx = Context(bootstrap_from_env(), quick=args.quick)
    started = datetime.now(timezone.utc)
    began = time.monotonic()
    rows: list[Row] = []
    failures: list[Failure] = []
    topics = count_topics(ctx)
    _say(
        f"benchmarks ({'quick' if ctx.quick else 'full'} run) against {ctx.bootstrap} "
        f"({topics} topics), topic prefix {ctx.prefix!r}"
    )
    try:
        for number, key in enumerate(args.groups, 1):
            module = GROUPS[key]
            _say(f"[{number}/{len(args.groups)}] {key}: {module.TITLE} ...")
            gc.collect()  # what one group left behind is not the next one's pause
            group_began = time.monotonic()
            try:
                rows.extend(module.run(ctx))
            except Exception as exc:
                traceback.print_exc()
                failures.append(Failure(key, f"{type(exc).__name__}: {exc}"))
            finally:
                # Each group starts from the same cluster: read costs grow with its topic count.
                _cleanup(ctx)
            _say(f"    {time.monotonic() - group_began:.1f} s")
    finally:
        _cleanup(ctx)
    wall = time.monotonic() - began
    print(render(rows, failures))
    glance = peers.table([r.as_json() for r in rows])
    if glance:
        print()
        print("The peers at a glance (p50 latency; messages written per second at once):")
        print(glance)
    print()
    print(
        "ours vs baseline = baseline / ours on the statistic in brackets (lower-is-better "
        "figures), ours / baseline for msg/s;"
    )
    print(
        f"p99 of n samples is the nearest-rank percentile. {topics} topics in the cluster "
        f"before the run. Wall time {wall:.1f} s."
    )
    if args.json is not None:
        meta = {
            "started": started.isoformat(timespec="seconds"),
            "wall_seconds": round(wall, 1),
            "quick": ctx.quick,
            "bootstrap": ctx.bootstrap,
            "cluster_topics_before": topics,
            "groups": args.groups,
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
        write_json(args.json, meta, rows, failures)
        _say(f"wrote {args.json}")
    if args.plot is not None:
        from .plot import draw

        mode = "quick" if ctx.quick else "full"
        _say(draw([r.as_json() for r in rows], args.plot, f"{started:%Y-%m-%d}, {mode} run"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
