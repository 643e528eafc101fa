"""Structured entries to journald (native protocol), or to syslog where there is no journal.

In: a dict of journal fields (MESSAGE, MESSAGE_ID, PRIORITY, SYSLOG_IDENTIFIER, RAG_*).
Out: one datagram on /run/systemd/journal/socket ($RAG_JOURNAL_SOCKET overrides), or, when
that socket is absent or refuses, an RFC 3164 line `<pri>IDENT: MESSAGE` on /dev/log
($RAG_SYSLOG_SOCKET overrides; setting it selects syslog). journald adds the trusted
fields itself (_UID, _PID, _SYSTEMD_UNIT): the sender cannot forge them.
"""
from __future__ import annotations

import os
import re
import socket
import struct

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_SOCKET = "/dev/log"
JOURNAL_ENV = "RAG_JOURNAL_SOCKET"
SYSLOG_ENV = "RAG_SYSLOG_SOCKET"
FACILITY_AUTHPRIV = 10  # syslog facility of security/authorization messages
_FIELD = re.compile(r"^[A-Z0-9][A-Z0-9_]*$")


def field_name(key: str) -> str:
    """A journal field name from any key: upper case, [A-Z0-9_] only, not starting with '_'."""
    name = re.sub(r"[^A-Z0-9_]", "_", key.upper()).lstrip("_")
    return name or "X"


def encode(fields: dict[str, object]) -> bytes:
    """The native protocol's datagram: KEY=value lines; values with a newline in the binary form."""
    out = bytearray()
    for key, value in fields.items():
        if not _FIELD.match(key):
            raise ValueError(f"invalid journal field name {key!r}")
        data = str(value).encode()
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def syslog_line(fields: dict[str, object]) -> bytes:
    """`<pri>IDENT: MESSAGE` with the facility authpriv and the entry's priority."""
    pri = FACILITY_AUTHPRIV * 8 + int(fields.get("PRIORITY", 6))
    ident = fields.get("SYSLOG_IDENTIFIER", "rag-backup")
    return f"<{pri}>{ident}: {fields.get('MESSAGE', '')}".encode()


SEND_TIMEOUT_S = 2.0  # a log daemon that stopped reading (its queue full) delays a job this long, never for good


def _send(path: str, data: bytes) -> None:
    """One datagram to `path`; OSError (socket.timeout included) when it cannot be delivered in time."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.settimeout(SEND_TIMEOUT_S)
        s.sendto(data, path)


def send_syslog(path: str, fields: dict[str, object]) -> bool:
    """Send the entry as a syslog line to the datagram socket `path`; False when nobody listens."""
    try:
        _send(path, syslog_line(fields))
        return True
    except OSError:
        return False


def send(fields: dict[str, object]) -> str:
    """Send one entry; returns where it went ("journal", "syslog" or "" when nothing accepted it).
    Never raises for an unreachable log: an audit sink that is down must not fail the operation."""
    syslog_path = os.environ.get(SYSLOG_ENV)
    journal_path = os.environ.get(JOURNAL_ENV) or JOURNAL_SOCKET
    if not syslog_path and os.path.exists(journal_path):
        try:
            _send(journal_path, encode(fields))
            return "journal"
        except OSError:
            pass  # journald gone or the entry too large for a datagram: syslog keeps the same content
    return "syslog" if send_syslog(syslog_path or SYSLOG_SOCKET, fields) else ""
