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


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("option", "suggestion"),
    [
        ("topic_setings", "topic_settings"),
        ("topc", "topic"),
        ("sasl_pasword", "sasl_plain_password"),
    ],
)
async def test_a_misspelt_from_conn_string_option_names_the_savers_own_parameter(
    option: str, suggestion: str
) -> None:
    # Not the client's `shared_topic_settings`, which would silently set the chat layout.
    from aiokafka_history import ConfigurationError

    misspelt = {option: "s3cr3t"}
    with (
        pytest.raises(ConfigurationError, match=f"did you mean {suggestion!r}") as caught,
        KafkaSaver.from_conn_string("b:1", **misspelt),  # type: ignore[arg-type]
    ):
        pass
    assert "s3cr3t" not in str(caught.value)
    with pytest.raises(ConfigurationError, match=f"did you mean {suggestion!r}"):
        async with AsyncKafkaSaver.from_conn_string("b:1", **misspelt):  # type: ignore[arg-type]
            pass
