"""A byte budget shared by every capture an agent runs at once.

In: reservations of file bytes that a capture has read and not yet sent to the
controller or found unwanted by it. Out: callers block while the agent as a whole holds more
than the limit, so memory stays bounded however many components are captured
concurrently, while captures that read nothing (unchanged files) are never held up.

A capture that holds part of the budget must not wait for more: it first sends all
it has read (which releases its share), so waiting never deadlocks.
"""
from __future__ import annotations

import threading
from typing import Callable

from ragbackup import errors


class ByteBudget:
    """Counts reserved bytes against `limit`; thread-safe."""

    def __init__(self, limit: int):
        self.limit = limit
        self._used = 0
        self._cond = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    def try_acquire(self, n: int) -> bool:
        """Reserve `n` bytes if they fit (a lone reservation always fits); False otherwise."""
        with self._cond:
            if self._used and self._used + n > self.limit:
                return False
            self._used += n
            return True

    def acquire(self, n: int, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Reserve `n` bytes, waiting for others' releases; Cancelled once `cancelled()` says so."""
        with self._cond:
            while self._used and self._used + n > self.limit:
                if cancelled():
                    raise errors.Cancelled("capture cancelled while waiting for the agent's memory budget")
                self._cond.wait(0.5)
            self._used += n

    def release(self, n: int) -> None:
        """Give back `n` bytes; a negative `n` takes more at once (a file grew while it was read)."""
        with self._cond:
            self._used -= n
            if n > 0:
                self._cond.notify_all()
