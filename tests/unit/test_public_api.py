import gc
import inspect
import warnings

import pytest

import aiokafka_history
from aiokafka_history import (
    AsyncKafkaChatMessageHistory,
    AsyncKafkaHistoryClient,
    HistoryClosedError,
    KafkaChatMessageHistory,
    KafkaHistoryClient,
)


def test_all_is_sorted_complete_and_importable() -> None:
    names = aiokafka_history.__all__
    # isort-style, as ruff (RUF022) keeps it: CONSTANTS, then Classes, then the rest.
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))
    public = {
        name
        for name, value in vars(aiokafka_history).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(names) - {"__version__"}
    for name in names:
        assert getattr(aiokafka_history, name) is not None


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    out = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name not in ("__enter__", "__exit__"):
            continue
        if callable(member):
            out[name] = inspect.signature(member)
    return out


def _params(sig: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize("cls", [AsyncKafkaChatMessageHistory, KafkaChatMessageHistory])
def test_every_async_method_has_a_sync_twin_with_the_same_parameters(cls: type) -> None:
    methods = _public_methods(cls)
    async_names = [n for n, m in inspect.getmembers(cls) if inspect.iscoroutinefunction(m)]
    async_names = [n for n in async_names if not n.startswith("_")]
    assert {"aget_messages", "aadd_messages", "aclear", "aclose"} <= set(async_names)
    for name in async_names:
        twin = "get_messages" if name == "aget_messages" else name[1:]
        assert twin in methods, f"{cls.__name__}.{name} has no sync twin {twin}"
        assert _params(methods[name]) == _params(methods[twin]), name
    assert isinstance(inspect.getattr_static(cls, "messages"), property)


def test_both_history_classes_offer_the_same_api() -> None:
    sync_api = _public_methods(KafkaChatMessageHistory)
    async_api = _public_methods(AsyncKafkaChatMessageHistory)
    langchain_base = {"aadd_messages", "add_messages"}  # present on both anyway
    assert set(sync_api) - set(async_api) <= langchain_base
    for name in set(sync_api) & set(async_api):
        if name.startswith("__"):
            continue
        assert _params(sync_api[name]) == _params(async_api[name]), name


def test_seed_constructor_is_positional_compatible() -> None:
    sig = inspect.signature(KafkaChatMessageHistory)
    assert list(sig.parameters)[:5] == [
        "session_id",
        "bootstrap_servers",
        "ttl_ms",
        "replication_factor",
        "partition",
    ]
    assert sig.parameters["ttl_ms"].default == 7 * 24 * 3600 * 1000
    for name in ("messages_from_beginning", "messages_from_latest", "messages_from_last_consumed"):
        params = inspect.signature(getattr(KafkaChatMessageHistory, name)).parameters
        assert list(params)[1:] == ["max_message_count", "max_time_sec"]


def test_clients_offer_the_same_api() -> None:
    sync_api = _public_methods(KafkaHistoryClient)
    async_api = _public_methods(AsyncKafkaHistoryClient)
    for name in ("history", "list_sessions", "session_exists", "delete_session"):
        assert _params(sync_api[name]) == _params(async_api[name]), name


def test_close_is_idempotent_and_use_after_close_raises() -> None:
    for cls in (KafkaChatMessageHistory, AsyncKafkaChatMessageHistory):
        history = cls("s", "192.0.2.1:9")
        history.close()
        history.close()
        with pytest.raises(HistoryClosedError, match="closed"):
            history.add_user_message("late")
        with pytest.raises(HistoryClosedError):
            _ = history.messages


def test_unused_objects_do_not_warn_but_closed_ones_never_do() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = KafkaChatMessageHistory("s", "192.0.2.1:9")
        del history  # nothing was started: nothing leaks
        client = AsyncKafkaHistoryClient("b:1")
        client.close()
        del client
        async_history = AsyncKafkaChatMessageHistory("s", "192.0.2.1:9")
        del async_history
        gc.collect()
    assert [str(w.message) for w in caught] == []
