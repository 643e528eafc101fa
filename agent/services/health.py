"""Readiness probes of a service by address: a TCP port that accepts, an HTTP URL that answers 2xx.

In: a host and port, or a URL. Out: True or False, never an exception; wait on them with
agent/ready.py's wait_until (the one polling loop).
"""
from __future__ import annotations

import socket
from functools import cache

from ragbackup.lazy import lazy_import

# HTTP (and with it ssl) is loaded by the first HTTP health check, not by every agent.
urllib_error = lazy_import("urllib.error")
urllib_request = lazy_import("urllib.request")


@cache
def _direct():
    """An opener without proxy handler: health checks target loopback or service addresses
    directly, never an environment proxy."""
    return urllib_request.build_opener(urllib_request.ProxyHandler({}))


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
