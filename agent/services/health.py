"""In: a readiness check (tcp_ready, http_ok or any callable) and how long to wait for it.
Out: seconds waited, or errors.Unhealthy naming what and for how long; restore start order waits on this.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable
from functools import cache

from ragbackup import errors
from ragbackup.lazy import lazy_import

POLL_INTERVAL_S = 0.1

# HTTP (and with it ssl) is loaded by the first HTTP health check, not by every agent.
urllib_error = lazy_import("urllib.error")
urllib_request = lazy_import("urllib.request")


@cache
def _direct():
    """An opener without proxy handler: health checks target loopback or service addresses
    directly, never an environment proxy."""
    return urllib_request.build_opener(urllib_request.ProxyHandler({}))


def wait_until_healthy(check: Callable[[], bool], timeout_s: float, what: str,
                       interval_s: float = POLL_INTERVAL_S) -> float:
    """Call `check` until it returns True; return the seconds waited, or raise errors.Unhealthy.

    An exception from `check` counts as "not yet" and is quoted in the final error.
    """
    start = time.monotonic()
    deadline = start + timeout_s
    last_problem = "check returned false"
    while True:
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:  # noqa: BLE001 - a failing probe means "not ready yet"; quoted at the end
            last_problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise errors.Unhealthy(f"{what} not healthy after {timeout_s:g}s (last: {last_problem})")
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))


def tcp_ready(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when GET url answers 2xx (no proxy is used)."""
    try:
        with _direct().open(url, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300
    except (urllib_error.URLError, OSError, ValueError):
        return False
