"""LangGraph's own conformance suite (langgraph-checkpoint-conformance) on the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from aiokafka_history import AsyncKafkaHistoryClient, KafkaHistoryClient, TopicSettings
from aiokafka_history.langgraph import AsyncKafkaSaver, KafkaSaver
from kafkalocal import TopicFactory

pytestmark = pytest.mark.anyio

SMALL = TopicSettings(partition=3)
REQUIRED = 58
OPTIONAL = 23


def _counts(report: object) -> tuple[int, int, int]:
    results = report.results.values()  # type: ignore[attr-defined]
    passed = sum(r.tests_passed for r in results)
    failed = sum(r.tests_failed for r in results)
    skipped = sum(r.tests_skipped for r in results)
    return passed, failed, skipped


async def test_async_saver_passes_every_conformance_test(
    kafka_bootstrap: str, kafka_topics: TopicFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with AsyncKafkaHistoryClient(kafka_bootstrap) as client:

        @checkpointer_test(name="AsyncKafkaSaver")
        async def kafka_saver() -> AsyncIterator[AsyncKafkaSaver]:
            # A fresh topic per capability suite, on the one client.
            saver = AsyncKafkaSaver(client, topic=kafka_topics("lg"), topic_settings=SMALL)
            await saver.setup()
            yield saver

        report = await validate(kafka_saver, progress=ProgressCallbacks.verbose())
        report.print_report()
    passed, failed, skipped = _counts(report)
    assert report.passed_all(), report.to_dict()
    assert (passed, failed, skipped) == (REQUIRED + OPTIONAL, 0, 0)


async def test_blocking_saver_passes_the_conformance_tests_of_its_bridge(
    kafka_bootstrap: str, kafka_topics: TopicFactory
) -> None:
    """The blocking twin's a-methods hop onto its loop thread: the required reads and writes."""
    with KafkaHistoryClient(kafka_bootstrap) as client:

        @checkpointer_test(name="KafkaSaver")
        async def kafka_saver() -> AsyncIterator[KafkaSaver]:
            saver = KafkaSaver(client, topic=kafka_topics("lg"), topic_settings=SMALL)
            await client.acall(saver.core.setup)
            yield saver

        report = await validate(kafka_saver, capabilities={"put", "put_writes", "get_tuple"})
    passed, failed, _ = _counts(report)
    assert report.passed_all(), report.to_dict()
    assert (passed, failed) == (37, 0)
