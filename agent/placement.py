"""Where a restore writes and how it takes the place of the current data.

In: component name and path, and the requested target (empty = in place).
Out: a Placement: restore into a staging sibling, then move any current data
aside as `NAME.corrupted.YYYYMMDD_HHMMSS` (never deleted) and rename the staging
directory into place, so there is no moment with neither copy on disk.
`move_aside` is the one way every component kind (paths, config, Redis, Chroma)
moves current data aside; `recreate_dir` puts an empty directory back with the
owner and mode the moved one had; `chown_tree` gives a placed tree its service's
owner, `take_owner_and_mode` a directory the owner and mode of another.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from typing import Callable

from ragbackup import clock, errors, faults


@dataclass(frozen=True)
class Placement:
    final: str  # where the restored tree ends up
    staging: str  # where it is written first
    aside: str  # where current data at `final` goes (in-place restores)
    in_place: bool
    stamp: str = ""  # YYYYMMDD_HHMMSS of the aside name


def plan(name: str, component_path: str, target: str, stamp: str | None = None) -> Placement:
    """Pure: the paths of a restore of component `name`."""
    stamp = stamp or clock.stamp(clock.SYSTEM.now())
    if target:
        final = os.path.join(os.path.abspath(target), name)
        in_place = False
    else:
        if not component_path or not os.path.isabs(component_path):
            raise errors.UsageError(f"component {name} has no absolute path to restore in place; use --target")
        final = os.path.normpath(component_path)
        in_place = True
    parent, base = os.path.split(final)
    return Placement(final=final, staging=os.path.join(parent, f".{base}.restoring.{stamp}"),
                     aside=aside_path(final, stamp, lambda _: False), in_place=in_place, stamp=stamp)


ASIDE_MARK = ".corrupted."


def aside_path(path: str, stamp: str, exists: Callable[[str], bool] = os.path.lexists) -> str:
    """`PATH.corrupted.YYYYMMDD_HHMMSS`, the sibling current data moves to; `.2`, `.3`... if taken."""
    base = f"{path.rstrip(os.sep)}{ASIDE_MARK}{stamp}"
    candidate, n = base, 1
    while exists(candidate):
        n += 1
        candidate = f"{base}.{n}"
    return candidate


def move_aside(path: str, stamp: str | None = None) -> str | None:
    """Rename `path` to its aside sibling (never deleted); None when there is nothing at `path`.

    A mount point (a volume, a container's data dir) cannot be renamed (EBUSY, EXDEV):
    its contents move into the aside directory instead, which gets the owner and mode
    `path` has, and `path` stays, empty. Across filesystems that move is a copy.
    """
    if not os.path.lexists(path):
        return None
    aside = aside_path(path, stamp or clock.stamp(clock.SYSTEM.now()))
    try:
        os.rename(path, aside)
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.EXDEV):
            raise
        _move_contents(path, aside)
    return aside


def _move_contents(path: str, aside: str) -> None:
    st = os.stat(path)
    os.mkdir(aside, 0o700)
    copy_dir_meta(st, aside)
    for name in sorted(os.listdir(path)):
        shutil.move(os.path.join(path, name), os.path.join(aside, name))


def copy_dir_meta(st: os.stat_result, path: str) -> None:
    """Give directory `path` the owner (when root), mode and mtime of `st`."""
    take_owner_and_mode(path, st)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def take_owner_and_mode(path: str, st: os.stat_result) -> None:
    """Give `path` the owner (when root: only root may give files away) and the mode of `st`."""
    if os.geteuid() == 0:
        os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, stat.S_IMODE(st.st_mode))


def chown_tree(path: str, owner: tuple[int, int] | None) -> None:
    """`chown -R -h owner path`: a placed database tree becomes its service's (None: left as it is)."""
    if owner is None:
        return
    uid, gid = owner
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def recreate_dir(path: str, aside: str | None, default_mode: int = 0o750) -> None:
    """After move_aside: an empty directory at `path` with the moved one's owner and mode.

    A mount point stayed in place (nothing to do); with nothing moved, a new directory
    gets `default_mode`.
    """
    if os.path.isdir(path):
        return
    os.mkdir(path, default_mode)
    if aside is not None and os.path.isdir(aside):
        take_owner_and_mode(path, os.stat(aside))


def check_target_free(p: Placement) -> None:
    """A --target restore never overwrites: the component's directory there must be absent or empty."""
    if p.in_place:
        return
    if os.path.lexists(p.final) and (not os.path.isdir(p.final) or os.listdir(p.final)):
        raise errors.UsageError(f"restore target {p.final} already exists and is not empty")
    if os.path.lexists(p.staging):
        raise errors.UsageError(f"restore staging directory {p.staging} already exists")


def swap_in(p: Placement, aside_done: Callable[[], None] = lambda: None) -> str:
    """Move current data aside (in place) and the staging tree into place; returns the aside path.

    `aside_done` is called once the current data is out of the way and before the staged tree moves
    in: from then on the staged tree is the one to finish putting in place (`finish_swap`) if the
    process dies.
    """
    aside = ""
    if os.path.lexists(p.final):
        if p.in_place:
            aside = move_aside(p.final, p.stamp or None) or ""
        else:
            os.rmdir(p.final)  # checked empty before the restore began
    aside_done()
    faults.point("restore.between_renames")
    _place(p.staging, p.final)
    return aside


def finish_swap(staging: str, final: str) -> bool:
    """Complete a swap that died after the current data moved aside; True when the staged tree was put in place.

    `final` is then missing, or an emptied mount point that may hold part of the staged tree already;
    anything else (a link, a file) is left alone and False returned.
    """
    if os.path.islink(staging) or not os.path.isdir(staging):
        return False
    if os.path.lexists(final) and (os.path.islink(final) or not os.path.isdir(final)):
        return False
    _place(staging, final)
    return True


def _place(staging: str, final: str) -> None:
    if os.path.isdir(final):  # a mount point: it stayed, emptied by move_aside
        _fill_mount_point(staging, final)
    else:
        os.rename(staging, final)
    _fsync_dir(os.path.dirname(final))


def _fill_mount_point(staging: str, final: str) -> None:
    """Move the staged tree's contents into `final` and give `final` the staged root's metadata."""
    for name in sorted(os.listdir(staging)):
        os.rename(os.path.join(staging, name), os.path.join(final, name))
    copy_dir_meta(os.stat(staging), final)
    os.rmdir(staging)


def discard_staging(p: Placement) -> None:
    """Remove a failed restore's partial staging tree (it holds nothing else)."""
    shutil.rmtree(p.staging, ignore_errors=True)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
