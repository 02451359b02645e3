"""``with`` and ``async with`` for the closeable objects of the package. No I/O."""

from __future__ import annotations

from types import TracebackType

from typing_extensions import Self

__all__ = ["Closeable"]


class Closeable:
    """Mixin: entering checks the object is open, leaving closes it (``close``/``aclose``)."""

    def _check_open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the object's resources; idempotent."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release the object's resources from async code; idempotent."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
