"""A full volume outside the controller's areas (an agent's staging dir, a restore target) is NoSpace naming the path."""
from __future__ import annotations

import errno

from ragbackup import errors
from ragbackup.rpc import _typed


def test_a_full_copy_destination_is_named():
    exc = OSError(errno.ENOSPC, "No space left on device", "/data/dump.rdb", None, "/staging/x/dump.rdb")
    typed = _typed(exc, "/ragbackup.v1.Agent/Capture", {})
    assert type(typed) is errors.NoSpace
    assert typed.message == "cannot write /staging/x/dump.rdb: No space left on device (ENOSPC)"


def test_inside_a_known_area_the_area_wins_and_other_errors_stay_unexpected():
    exc = OSError(errno.EDQUOT, "Disk quota exceeded", "/state/catalog.db")
    assert type(_typed(exc, "/x/Backup", {"/state": "state_dir"})) is errors.StateNoSpace
    assert _typed(OSError(errno.EIO, "I/O error", "/elsewhere"), "/x/Backup", {}) is None
