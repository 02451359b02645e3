"""The writer process of the live-tail benchmark (run by ``live_tail``, not by hand).

``python -m benchmarks.tail_writer BOOTSTRAP SESSION COUNT INTERVAL_SECONDS`` writes one
warm-up message (connections are made then, not during the measured writes), then ``COUNT``
human messages whose content is ``{"i": i, "sent": time.time()}``, taken just before the
write, with ``INTERVAL_SECONDS`` of sleep after each.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence

from aiokafka_history import AsyncKafkaChatMessageHistory


async def write(bootstrap: str, session: str, count: int, interval: float) -> None:
    """Write the warm-up message and the ``count`` timed ones."""
    async with AsyncKafkaChatMessageHistory(session, bootstrap) as history:
        await history.aadd_user_message(json.dumps({"warmup": True}))
        await asyncio.sleep(0.5)
        for i in range(count):
            await history.aadd_user_message(json.dumps({"i": i, "sent": time.time()}))
            await asyncio.sleep(interval)


def main(argv: Sequence[str]) -> int:
    bootstrap, session, count, interval = argv
    asyncio.run(write(bootstrap, session, int(count), float(interval)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
