"""Secrets: a string that never shows itself, and the one reader of key and password files.

In: a secret value from config, or the path of a file holding one. Out: `Secret`, whose
`.reveal()` is for the one place that needs it (`str()`/`repr()` give `***`), and
`read_private`, the file's bytes once its mode shows no one else may read it (as ssh
refuses a loose private key), else a ConfigError naming the file and the fix.
"""
from __future__ import annotations

import grp
import os
import stat

from ragbackup.errors import ConfigError


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def loose_mode(mode: int, uid: int, gid: int, own_groups: set[int]) -> str | None:
    """Pure: why a secret file of this mode, owner and group is readable by others; None when it is not.

    Accepted: no permission bit for group or others (0600, 0400); and, for a file owned by
    root, group read when the group is one of the reading process's own (`own_groups`):
    root:rag-backup 0640 read by the controller running as rag-backup. Nothing else.
    """
    mode = stat.S_IMODE(mode)
    if mode & 0o007:
        return f"mode {mode:04o}: others may {'read' if mode & 0o004 else 'change'} it"
    if not mode & 0o070:
        return None
    if uid == 0 and not mode & 0o030 and gid in own_groups:
        return None
    who = f"its group {_group_name(gid)} may {'change' if mode & 0o030 else 'read'} it"
    if uid != 0 or mode & 0o030:
        return f"mode {mode:04o}: {who} (only a file owned by root may be read by the daemon's own group)"
    return f"mode {mode:04o}: {who}, and that is not the reading process's own group"


def own_groups() -> set[int]:
    """The reading process's effective and supplementary group ids."""
    return {os.getegid(), *os.getgroups()}


def read_private(path: str, what: str, where: str = "") -> bytes:
    """The bytes of key or password file `path`, after checking its mode on the opened file.

    ConfigError, prefixed by `where` (e.g. "FILE: "), when the file cannot be read or when
    others may read it: `{what} {path}: mode 0644 lets others ...: run `chmod 600 {path}``.
    """
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            why = loose_mode(st.st_mode, st.st_uid, st.st_gid, own_groups())
            if why is None:
                return f.read()
    except OSError as exc:
        raise ConfigError(f"{where}cannot read {what} {path}: {exc.strerror or exc}") from None
    raise ConfigError(f"{where}{what} {path}: {why}; refused, as a private key readable by others would be "
                      f"(run `chmod 600 {path}`, owned by the user the daemon runs as; see docs/OPERATIONS.md)")
