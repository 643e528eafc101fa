"""The public unix socket's relay: who is calling, from the kernel, for a gRPC server that cannot tell.

In: connections on the public socket (0660, the socket group). Out: each connection's bytes
relayed to the gRPC server's private socket (in a 0700 directory only the daemon's user can
enter), from a client socket bound to an abstract address that spells the caller's
SO_PEERCRED uid, gid and pid plus /proc/PID/loginuid; the servicer reads it back from
`context.peer()` (`parse_peer`). grpcio shows no peer credentials on a unix socket (its
peer is just "unix:"), and a client cannot forge the address: it cannot reach the private
socket. A peer outside the socket group (the file mode was loosened) is refused and audited.
"""
from __future__ import annotations

import grp
import logging
import os
import secrets
import socket
import struct
import threading
from dataclasses import dataclass

from ragbackup import unixsock

from ragbackup.controller.audit import Audit, Caller

log = logging.getLogger("ragbackup.controller")

ABSTRACT_PREFIX = "rag-backup-peer"
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_BUF = 256 * 1024


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    loginuid: int


def peer_of(conn: socket.socket) -> Peer:
    """The connecting process's credentials, as the kernel recorded them at connect()."""
    pid, uid, gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Peer(pid, uid, gid, _loginuid(pid))


def _loginuid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/loginuid") as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return -1
    return -1 if value == 0xFFFFFFFF else value


def _groups(pid: int) -> set[int]:
    """The process's supplementary groups (/proc/PID/status), empty when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


def allowed(peer: Peer, group_gid: int | None, groups: set[int]) -> bool:
    """Root, the daemon's own user and members of the socket group may call (pure)."""
    if peer.uid in (0, os.getuid()):
        return True
    return group_gid is not None and (peer.gid == group_gid or group_gid in groups)


def abstract_name(peer: Peer) -> str:
    """The abstract address the relay binds for this peer: unique per connection."""
    return f"{ABSTRACT_PREFIX}/{peer.uid}/{peer.gid}/{peer.pid}/{peer.loginuid}/{secrets.token_hex(6)}"


def parse_peer(peer: str, claimed: str = "") -> Caller:
    """The Caller a relayed connection's `context.peer()` names; transport "unknown" for any other unix peer."""
    if peer.startswith("unix-abstract:"):
        parts = peer[len("unix-abstract:"):].split("/")
        if len(parts) == 6 and parts[0] == ABSTRACT_PREFIX:
            try:
                uid, gid, pid, loginuid = (int(p) for p in parts[1:5])
            except ValueError:
                return Caller("unknown", claimed=claimed)
            return Caller("unix", uid=uid, gid=gid, pid=pid, loginuid=loginuid, claimed=claimed)
    if peer.startswith(("ipv4:", "ipv6:")):
        return Caller("tcp", claimed=claimed)
    return Caller("unknown", claimed=claimed)


def private_path(public: str) -> str:
    """Where the gRPC server listens: a 0700 directory beside the public socket. The name is one letter so
    the private path is no longer than the public one (a unix socket path holds at most 107 bytes)."""
    return os.path.join(os.path.dirname(public), ".grpc", "s")


def prepare_private(path: str) -> None:
    """Create the private socket's directory 0700 (tightened if it existed) and remove a stale socket."""
    unixsock.prepare(path)
    os.chmod(os.path.dirname(path), 0o700)


class Relay:
    """Accepts on the public socket and relays each connection to the private one, two threads each."""

    def __init__(self, public: str, private: str, group: str, audit: Audit):
        self.public, self.private, self.audit = public, private, audit
        try:
            self.group_gid: int | None = grp.getgrnam(group).gr_gid
        except KeyError:
            self.group_gid = None
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        """Bind the public socket (0660, owner:group) and serve it on a thread."""
        unixsock.prepare(self.public)
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(self.public)
        unixsock.restrict(self.public, self._group_name())
        lst.listen(64)
        self._listener = lst
        threading.Thread(target=self._accept_loop, name="peercred-relay", daemon=True).start()

    def _group_name(self) -> str:
        return grp.getgrgid(self.group_gid).gr_name if self.group_gid is not None else ""

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # listener closed: stopping
            try:
                self._relay(conn)
            except OSError as exc:
                log.warning("relay: a connection failed before it was relayed: %s", exc)
                conn.close()

    def _relay(self, conn: socket.socket) -> None:
        peer = peer_of(conn)
        if not allowed(peer, self.group_gid, _groups(peer.pid)):
            who = Caller("unix", uid=peer.uid, gid=peer.gid, pid=peer.pid, loginuid=peer.loginuid)
            self.audit.record("refused", who, "refused", reason=f"not in group {self._group_name() or '?'}")
            conn.close()
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.bind("\0" + abstract_name(peer))
            upstream.connect(self.private)
        except OSError:
            upstream.close()
            raise
        _pump_pair(conn, upstream)


def _pump_pair(a: socket.socket, b: socket.socket) -> None:
    """Copy both directions on two threads; close both sockets when both directions ended."""
    done = threading.Barrier(2, action=lambda: (a.close(), b.close()))
    for src, dst in ((a, b), (b, a)):
        threading.Thread(target=_pump, args=(src, dst, done), name="peercred-pump", daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket, done: threading.Barrier) -> None:
    try:
        while True:
            data = src.recv(_BUF)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass  # either side went away: end this direction
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    try:
        done.wait()
    except threading.BrokenBarrierError:
        pass

