"""What every storage layout does with a produce outcome: success, or the right error."""

from __future__ import annotations

from aiokafka.errors import KafkaError

from ._errors import SessionWriteError
from ._kafka_producer import ProduceOutcome
from ._translate import Subject, describe, is_access_error, translating

__all__ = ["raise_for_outcome", "write_error"]


def write_error(
    subject: Subject, acknowledged: int, total: int, error: BaseException, *, indeterminate: bool
) -> SessionWriteError:
    """The error for a write of which only ``acknowledged`` of ``total`` messages landed."""
    fate = (
        "their outcome is unknown (they may still be stored)"
        if indeterminate
        else "the rest were not written"
    )
    cause = error.__cause__ if isinstance(error.__cause__, KafkaError) else error
    return SessionWriteError(
        f"only {acknowledged} of {total} messages to {subject} were acknowledged; "
        f"{fate}: {describe(cause)}",
        session_id=subject.session_id,
        topic=subject.topic,
        acknowledged=acknowledged,
        indeterminate=indeterminate,
    )


def raise_for_outcome(subject: Subject, total: int, outcome: ProduceOutcome) -> None:
    """Return when every message was acknowledged; raise the matching error otherwise.

    Raises:
        NotAuthorizedError: an ACL refused the write.
        SessionWriteError: some messages were not acknowledged.
    """
    error = outcome.error
    if error is None:
        return
    if is_access_error(error):
        with translating("admin", subject, "writing to"):
            raise error
    raise write_error(
        subject, outcome.acknowledged, total, error, indeterminate=outcome.indeterminate
    ) from error
