"""A Storage wrapper that retries transient failures with backoff.

In: any Storage and a retry policy. Out: the same Storage contract, where each call
is retried on StorageUnavailable (exponential backoff with jitter); other errors pass at once.
With a `deadline`, no retry starts (and no backoff sleeps) past `deadline` seconds after the
call began: a call fails within `deadline` plus one try of the inner storage.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from ragbackup import errors
from ragbackup.storage.base import BucketCreator, ObjectInfo, Storage

T = TypeVar("T")


class Retrying:
    """Retry `inner`'s calls that raise StorageUnavailable, up to `attempts` tries in all.

    The wait before retry n (1-based) is min(max_delay, base_delay * 2**(n-1)), scaled by
    a random factor in [0.5, 1) so that many clients do not retry in lockstep. A retry whose wait
    would end past `deadline` seconds after the call's start is not made: the failure propagates.
    """

    def __init__(  # noqa: PLR0913 - the retry policy, every knob but `inner` defaulted (tests pass sleep and clock)
        self,
        inner: Storage,
        attempts: int = 4,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        *,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        if deadline is not None and not deadline > 0:
            raise ValueError(f"deadline must be > 0 seconds, got {deadline}")
        self._deadline = deadline
        self._clock = clock
        self.inner = inner
        self._attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._random = random.Random()

    def __repr__(self) -> str:
        return f"Retrying({self.inner!r}, attempts={self._attempts}, deadline={self._deadline})"

    def describe(self) -> str:
        return self.inner.describe()

    def put(self, key: str, data: bytes) -> None:
        self._call(lambda: self.inner.put(key, data))

    def put_file(self, key: str, path: str) -> None:
        self._call(lambda: self.inner.put_file(key, path))

    def get(self, key: str) -> bytes:
        return self._call(lambda: self.inner.get(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._call(lambda: self.inner.get_range(key, offset, length))

    def get_to_file(self, key: str, path: str) -> None:
        self._call(lambda: self.inner.get_to_file(key, path))

    def size(self, key: str) -> int:
        return self._call(lambda: self.inner.size(key))

    def exists(self, key: str) -> bool:
        return self._call(lambda: self.inner.exists(key))

    def delete(self, key: str) -> None:
        self._call(lambda: self.inner.delete(key))

    def delete_many(self, keys: list[str]) -> None:
        """Deleting is idempotent, so a failed batch is simply sent again."""
        self._call(lambda: self.inner.delete_many(keys))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Retry until the first object arrives; a failure after that propagates.

        Restarting a half-consumed listing would yield objects twice, and remembering
        what was yielded would hold the whole listing in memory. Backends retry each
        page request themselves (botocore's standard retry mode for S3).

        The first request (and the prefix check, a ValueError) happens at this call, not
        at the first iteration, as the backends themselves check prefixes at once.
        """
        iterator, first = self._call(lambda: _start(self.inner.list(prefix)))
        return _resume(first, iterator)

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn`, retrying on StorageUnavailable; the last failure propagates."""
        began = self._clock()
        for attempt in range(1, self._attempts + 1):
            try:
                return fn()
            except errors.StorageUnavailable:
                delay = self._delay(attempt)
                if attempt == self._attempts or self._past_deadline(began, delay):
                    raise
            self._sleep(delay)
        raise AssertionError("unreachable")

    def _past_deadline(self, began: float, delay: float) -> bool:
        return self._deadline is not None and self._clock() + delay - began >= self._deadline

    def _delay(self, attempt: int) -> float:
        """Backoff before retry number `attempt`: exponential, capped, with jitter."""
        ceiling = min(self._max_delay, self._base_delay * (2 ** (attempt - 1)))
        return ceiling * (0.5 + self._random.random() / 2)


class RetryingBucketCreator(Retrying):
    """Retrying over a backend that can create its bucket: the capability is forwarded, retried."""

    inner: BucketCreator

    def create_bucket_if_missing(self) -> bool:
        return self._call(self.inner.create_bucket_if_missing)


def retrying(inner: Storage, **policy) -> Retrying:
    """`inner` wrapped in Retrying, keeping its optional capabilities (BucketCreator) visible."""
    cls = RetryingBucketCreator if isinstance(inner, BucketCreator) else Retrying
    return cls(inner, **policy)


def _resume(first: ObjectInfo | None, rest: Iterator[ObjectInfo]) -> Iterator[ObjectInfo]:
    if first is None:
        return
    yield first
    yield from rest


def _start(iterator: Iterator[ObjectInfo]) -> tuple[Iterator[ObjectInfo], ObjectInfo | None]:
    """Pull the first item so that errors raised on the first request happen here."""
    iterator = iter(iterator)
    return iterator, next(iterator, None)
