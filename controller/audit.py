"""The audit trail: a structured journal entry for every job's start and end, key operation,
daemon start/stop (the configuration it loaded) and refused request.

In: an action, the caller (a `Caller` the kernel or the TLS handshake vouched for) and the
outcome. Out: one entry through ragbackup.journal (native journald protocol; syslog with
the same content where there is no journal) with SYSLOG_IDENTIFIER `rag-backup`
(`rag-recovery` for restores and drills), a fixed MESSAGE_ID per event type, RAG_* fields,
and RAG_CALLER_* fields; also a log record. Entries name snapshots, components and users,
never secret values. docs/AUDIT.md lists the events and how to query them.
"""
from __future__ import annotations

import logging
import pwd
from dataclasses import dataclass

from ragbackup import journal

log = logging.getLogger("ragbackup.audit")

# One MESSAGE_ID per event type (journalctl MESSAGE_ID=...); fixed forever, listed in docs/AUDIT.md.
MESSAGE_IDS = {
    "job-start": "4efee49f05b34f23b8a1ab9aefb169b2",
    "job-end": "66fe5dc7978947dbbef5cca7c7d0c43f",
    "key": "faefc9dc25ac400ea053a98d563dcabb",  # repository created, master key generated or wrapped
    "refused": "8998a44a961447a2b11bb33edf1504d5",  # a caller refused before any work
    "daemon-start": "cca59fb9e4584a00804fa8eb7ade9b6b",  # configuration loaded, serving
    "daemon-stop": "7815697433074de3853ef10f121a0806",
    "config-reload": "be4d296ac57e4841abd02d43c29bf50c",
    "alert": "a7ccfcaeec2d49cc8acf952c2ef86408",  # an alert fired or resolved
    "operation": "96cb26f469c24925a98308c907119f0d",  # any other action (RAG_ACTION names it)
}
_EVENT_OF_ACTION = {"job-start": "job-start", "init": "key", "refused": "refused", "daemon-start": "daemon-start",
                    "daemon-stop": "daemon-stop", "config-reload": "config-reload", "alert": "alert"}
RECOVERY = ("restore", "drill")
SEVERITY = {"ok": 5, "failed": 3, "started": 6, "cancelled": 4, "refused": 4}  # notice, error, info, warning


@dataclass(frozen=True)
class Caller:
    """Who made a request, as the kernel (SO_PEERCRED) or the TLS handshake says; never as the client says.
    `claimed` is what the client reported about itself (kept for comparison, never trusted)."""

    transport: str  # "unix" (relayed, credentials from the kernel), "tls" (certificate), "tcp", "unknown"
    uid: int = -1
    gid: int = -1
    pid: int = -1
    loginuid: int = -1  # the audit login uid: who logged in, survives sudo/su; -1 when unset
    cert_name: str = ""
    claimed: str = ""

    @property
    def user(self) -> str:
        """The user name of `uid` (the number when it has none), or the certificate's name."""
        if self.uid >= 0:
            return _user_name(self.uid)
        if self.transport == "internal":
            return "rag-backup-controller"
        return self.cert_name or "?"

    def __str__(self) -> str:
        if self.uid >= 0:
            return f"{self.user}(uid={self.uid},pid={self.pid})"
        if self.cert_name:
            return f"cert:{self.cert_name}"
        if self.transport == "internal":
            return self.user
        return f"{self.claimed or '?'}@{self.transport}(unverified)"

    def fields(self) -> dict[str, object]:
        out: dict[str, object] = {"caller": str(self), "caller_transport": self.transport, "caller_user": self.user}
        if self.uid >= 0:
            out.update(caller_uid=self.uid, caller_gid=self.gid, caller_pid=self.pid)
            if self.loginuid >= 0:
                out.update(caller_loginuid=self.loginuid, caller_login_user=_user_name(self.loginuid))
        if self.cert_name:
            out["caller_cert"] = self.cert_name
        if self.claimed:
            out["caller_claimed"] = self.claimed
        return out


INTERNAL = Caller("internal")  # the controller itself (no request behind the entry)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _format(fields: dict) -> str:
    def q(v: object) -> str:
        s = str(v)
        return f'"{s}"' if (" " in s or not s) else s
    return " ".join(f"{k}={q(v)}" for k, v in fields.items())


def entry(action: str, caller: Caller | str, outcome: str, **fields) -> dict[str, object]:
    """The journal fields of one audit event (pure: no I/O but the passwd lookup of a uid)."""
    event = _EVENT_OF_ACTION.get(action) or ("job-end" if fields.get("kind") == action else "operation")
    ident = "rag-recovery" if action in RECOVERY or fields.get("kind") in RECOVERY else "rag-backup"
    who = caller.fields() if isinstance(caller, Caller) else {"caller": caller or "?", "caller_transport": "unknown"}
    line = _format({"action": action, "user": who.get("caller_user", who["caller"]), "outcome": outcome,
                    **{k: v for k, v in who.items() if k in ("caller_uid", "caller_pid", "caller_loginuid",
                                                              "caller_cert")},
                    **fields})
    out: dict[str, object] = {
        "MESSAGE": line, "MESSAGE_ID": MESSAGE_IDS[event], "PRIORITY": SEVERITY.get(outcome, 6),
        "SYSLOG_IDENTIFIER": ident, "SYSLOG_FACILITY": journal.FACILITY_AUTHPRIV,
        "RAG_EVENT": event, "RAG_ACTION": action, "RAG_OUTCOME": outcome,
    }
    for key, value in {**who, **fields}.items():
        out["RAG_" + journal.field_name(key)] = value
    return out


class Audit:
    """Sends audit entries. `path` (tests) is a syslog socket to use instead of the journal."""

    def __init__(self, path: str | None = None):
        self.path = path

    def record(self, action: str, user: Caller | str, outcome: str, **fields) -> str:
        """Send one audit entry; returns its MESSAGE line. Failing to reach the log never fails the job."""
        e = entry(action, user, outcome, **fields)
        log.info("audit %s: %s", e["SYSLOG_IDENTIFIER"], e["MESSAGE"])
        if self.path:
            journal.send_syslog(self.path, e)
        else:
            journal.send(e)
        return str(e["MESSAGE"])
