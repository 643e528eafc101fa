"""Waiting until a service answers: the one polling loop, with a deadline, for every readiness check.

In: a probe (True when ready; False, or an Unavailable, Unhealthy or OSError, while not yet),
how long to wait, what is waited for, and optionally a check that ends the wait early (a server
that exited, a call the controller ended). Out: the seconds waited, or NotReady naming what,
how long, and the last answer. Used for Redis (PING and loading:0), Chroma (heartbeat), a
service's health, and a restore drill's throwaway servers; never a fixed sleep.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ragbackup import errors

POLL_S = 0.1
# What a probe raises while the service is not there yet; anything else ends the wait.
NOT_YET: tuple[type[BaseException], ...] = (errors.Unavailable, errors.Unhealthy, OSError)


class NotReady(errors.Unavailable):
    """A service did not become ready in time."""


def wait_until(probe: Callable[[], bool], timeout_s: float, what: str, interval_s: float = POLL_S,
               abort: Callable[[], None] | None = None) -> float:
    """Call `probe` until it returns True; the seconds waited, or NotReady after `timeout_s`.

    `abort()` runs before each probe; what it raises ends the wait (it is not retried).
    """
    start = time.monotonic()
    deadline = start + timeout_s
    last = "no answer yet"
    while True:
        if abort is not None:
            abort()
        try:
            if probe():
                return time.monotonic() - start
            last = "not ready yet"
        except NOT_YET as exc:
            last = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now >= deadline:
            raise NotReady(f"{what} not ready after {timeout_s:g}s: {last}")
        time.sleep(min(interval_s, deadline - now))
