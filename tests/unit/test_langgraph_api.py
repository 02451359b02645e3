"""The LangGraph savers' public surface: exports, blocking twins, capabilities. No broker."""

from __future__ import annotations

import inspect

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver

import aiokafka_history.langgraph as package
from aiokafka_history.langgraph import AsyncKafkaSaver, KafkaSaver

ASYNC_METHODS = [
    "aget_tuple",
    "alist",
    "aput",
    "aput_writes",
    "adelete_thread",
    "adelete_for_runs",
    "acopy_thread",
    "aprune",
]


def test_all_is_complete() -> None:
    public = {n for n in dir(package) if not n.startswith("_") and n != "annotations"}
    assert set(package.__all__) == public


@pytest.mark.parametrize("name", ASYNC_METHODS)
def test_every_async_method_is_implemented_and_has_a_blocking_twin(name: str) -> None:
    base = getattr(BaseCheckpointSaver, name)
    for cls in (AsyncKafkaSaver, KafkaSaver):
        assert getattr(cls, name) is not base, f"{cls.__name__}.{name}"
    twin = getattr(KafkaSaver, name[1:])
    assert twin is not getattr(BaseCheckpointSaver, name[1:])
    assert inspect.signature(twin).parameters.keys() == (
        inspect.signature(getattr(AsyncKafkaSaver, name)).parameters.keys()
    )
    assert inspect.signature(getattr(KafkaSaver, name)).parameters.keys() == (
        inspect.signature(getattr(AsyncKafkaSaver, name)).parameters.keys()
    )
