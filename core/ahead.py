"""Run an iterator on a thread of its own, a bounded number of items ahead of its consumer.

In: a function making the iterator, how many items may wait, a thread name. Out:
the same items in the same order; an exception raised by the iterator is raised
to the consumer at the point it reached. Used where a producer waits on things
(disk, the worker pool, the controller's replies) that should overlap with what
its consumer waits on (gRPC's send of the previous message, the caller's work).

Closing the consumer's generator stops the producer: its iterator is closed on
the producer's thread (its `finally` blocks run there) before the close returns.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

POLL = 0.1  # seconds between checks for a stopped consumer while the queue is full


class _Stop(Exception):
    """The consumer stopped: the producing thread ends."""


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


def batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of up to `size` items of `items`, in order; the last may be shorter."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_ahead(make: Callable[[], Iterator[T]], depth: int, name: str) -> Iterator[T]:
    """Items of `make()`, produced on thread `name` up to `depth` items ahead of the caller."""
    q: queue.Queue = queue.Queue(max(1, depth))
    stop = threading.Event()

    def put(item) -> None:
        while True:
            if stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            it = make()
        except Exception as exc:  # noqa: BLE001 - handed to the consumer and raised there
            _hand_over(put, _Failed(exc))
            return
        try:
            for item in it:
                put(item)
            put(_END)
        except _Stop:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the consumer and raised there
            _hand_over(put, _Failed(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


def _hand_over(put: Callable[[object], None], failed: _Failed) -> None:
    try:
        put(failed)
    except _Stop:
        pass
