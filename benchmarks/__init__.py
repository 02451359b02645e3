"""Speed and memory figures of aiokafka-history, as ratios against baselines of the same run.

Run from the repository root with a broker::

    python -m kafkalocal exec -- python -m benchmarks [--quick] [--json PATH]

Each group lives in its own module and exposes ``TITLE`` and ``run(ctx) -> list[Row]``;
``__main__`` runs them in order, prints one table and deletes every topic the run created.
See ``benchmarks/README.md`` for what each figure means.
"""
