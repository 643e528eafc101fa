"""The audit trail: syslog lines for every job's start and end, and for key operations.

In: an action, the caller and the outcome. Out: a datagram to journald/syslog
(identifier `rag-backup`, or `rag-recovery` for restores) on /dev/log, or on
$RAG_SYSLOG_SOCKET when set (tests bind their own); also a log record. Lines
name snapshots, components and users, never secret values.
"""
from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("ragbackup.audit")

SOCKET_ENV = "RAG_SYSLOG_SOCKET"
FACILITY_AUTHPRIV = 10
SEVERITY = {"ok": 5, "failed": 3, "started": 6, "cancelled": 4}  # notice, error, info, warning


def _format(fields: dict) -> str:
    def q(v: object) -> str:
        s = str(v)
        return f'"{s}"' if (" " in s or not s) else s
    return " ".join(f"{k}={q(v)}" for k, v in fields.items())


class Audit:
    def __init__(self, path: str | None = None):
        self.path = path or os.environ.get(SOCKET_ENV) or "/dev/log"

    def record(self, action: str, user: str, outcome: str, **fields) -> str:
        """Send one audit line; returns it. Failing to reach syslog never fails the job."""
        recovery = ("restore", "drill")
        ident = "rag-recovery" if action in recovery or fields.get("kind") in recovery else "rag-backup"
        line = _format({"action": action, "user": user, "outcome": outcome, **fields})
        pri = FACILITY_AUTHPRIV * 8 + SEVERITY.get(outcome, 6)
        log.info("audit %s: %s", ident, line)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.connect(self.path)
                s.send(f"<{pri}>{ident}: {line}".encode())
        except OSError:
            pass
        return line
