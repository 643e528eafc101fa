"""Job locks with owner and liveness: flock(2) on files in the controller's state dir.

In: a lock name (`component-NAME`, `repository`) and who wants it. Out: a held
lock released when the job ends or its process dies (the kernel drops flocks of
dead processes, so a crashed run never blocks the next); LockBusy names the holder.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import datetime as _dt
import os
from typing import Iterator

from ragbackup import clock, errors


def _describe(path: str) -> str:
    try:
        with open(path) as f:
            o = json.load(f)
        since = _dt.datetime.fromtimestamp(o.get("since", 0), _dt.timezone.utc)
        return f"{o.get('job')} (pid {o.get('pid')}, since {since:%Y-%m-%d %H:%M:%S} UTC)"
    except (OSError, ValueError):
        return "another job"


@contextlib.contextmanager
def hold(state_dir: str, name: str, job: str, shared: bool = False) -> Iterator[None]:
    """Hold lock `name` for `job`; raise LockBusy at once if a live job holds it."""
    d = os.path.join(state_dir, "locks")
    path = os.path.join(d, f"{name}.lock")
    with errors.os_boundary("state_dir", "create lock file", path):
        os.makedirs(d, mode=0o750, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise errors.LockBusy(f"lock {name} is held by {_describe(path)}") from None
        if not shared:
            with errors.os_boundary("state_dir", "write lock file", path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({"job": job, "pid": os.getpid(),
                                          "since": clock.SYSTEM.now().timestamp()}).encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_all(state_dir: str, names: list[str], job: str) -> Iterator[None]:
    """Hold several exclusive locks (sorted, so two jobs never deadlock)."""
    with contextlib.ExitStack() as stack:
        for name in sorted(names):
            stack.enter_context(hold(state_dir, name, job))
        yield
