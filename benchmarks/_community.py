"""The langchain_community classes used as baselines, imported without its sunset warning.

langchain_community announces its retirement with a ``DeprecationWarning`` on import, which
``python -W error`` would turn into a crash; only that warning is silenced, only here.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="`langchain-community` is being sunset", category=DeprecationWarning
    )
    from langchain_community.chat_message_histories import (
        KafkaChatMessageHistory as CommunityKafkaHistory,
    )
    from langchain_community.chat_message_histories import (
        RedisChatMessageHistory as CommunityRedisHistory,
    )

__all__ = ["CommunityKafkaHistory", "CommunityRedisHistory"]
