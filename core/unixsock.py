"""Unix-socket listeners: where gRPC servers on this host listen without TLS.

In: a socket path and the group allowed to connect. Out: the path made ready
for binding (parent directory created, a stale socket of a previous run
removed) and, once bound, the socket restricted to 0660 owner:group. On a unix
socket the file's permissions are the authentication; nothing crosses the network.
"""
from __future__ import annotations

import grp
import os

PREFIX = "unix:"
MAX_PATH = 107  # sockaddr_un.sun_path, less its terminating NUL


def is_unix(address: str) -> bool:
    """True for a gRPC address of the form unix:PATH."""
    return address.startswith(PREFIX)


def path_of(address: str) -> str:
    """The filesystem path of a unix:PATH address."""
    return address[len(PREFIX):]


def problem(address: str) -> str | None:
    """Why a unix:PATH address cannot work (relative, or longer than sun_path holds); None if it can."""
    path = path_of(address)
    if not os.path.isabs(path):
        return f"{address}: expected unix:/absolute/path"
    if len(os.fsencode(path)) > MAX_PATH:
        return f"{address}: a unix socket path holds at most {MAX_PATH} bytes"
    return None


def prepare(path: str) -> None:
    """Create the socket's directory (0755) and remove a socket left by a previous run."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)


def restrict(path: str, group: str) -> None:
    """Owner and `group` (when it exists and may be set) only: mode 0660."""
    try:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    except (KeyError, PermissionError):
        pass
    os.chmod(path, 0o660)
