"""The agent's worker threads, shared by all of its concurrent captures and restores.

In: pure compute jobs (hash, compress, decode, read a small file) from each capture
or restore. Out: futures. One pool of about one thread per core serves every job
the agent runs at once: per-job pools would put three captures' six threads on two
cores, each with its own zstd contexts (several MiB each), and pay for it in
context switches and resident memory. Jobs never wait on other jobs, so sharing
cannot deadlock; each capture or restore bounds its own jobs in flight.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable


class JobGroup:
    """One capture's or restore's jobs on a pool; `close` cancels those not started and waits for the rest.

    With no `pool` the group runs its own of `workers` threads (tests, tools) and
    shuts it down on close.
    """

    def __init__(self, pool: ThreadPoolExecutor | None = None, workers: int = 2, name: str = "work"):
        self._own = pool is None
        self._pool = pool if pool is not None else ThreadPoolExecutor(max(1, workers), thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending: set[Future] = set()

    def submit(self, fn: Callable, *args) -> Future:
        fut = self._pool.submit(fn, *args)
        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut: Future) -> None:
        with self._lock:
            self._pending.discard(fut)

    def close(self) -> None:
        """Cancel this group's jobs that have not started; wait for those running."""
        with self._lock:
            pending = list(self._pending)
        for fut in pending:
            fut.cancel()
        wait(pending)
        if self._own:
            self._pool.shutdown(wait=True)
