"""Where a restore writes and how it takes the place of the current data.

In: component name and path, and the requested target (empty = in place).
Out: a Placement: restore into a staging sibling, then move any current data
aside as `NAME.corrupted.YYYYMMDD_HHMMSS` (never deleted) and rename the staging
directory into place, so there is no moment with neither copy on disk.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from ragbackup import clock, errors


@dataclass(frozen=True)
class Placement:
    final: str  # where the restored tree ends up
    staging: str  # where it is written first
    aside: str  # where current data at `final` goes (in-place restores)
    in_place: bool


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
                     aside=os.path.join(parent, f"{base}.corrupted.{stamp}"), in_place=in_place)


def check_target_free(p: Placement) -> None:
    """A --target restore never overwrites: the component's directory there must be absent or empty."""
    if p.in_place:
        return
    if os.path.lexists(p.final) and (not os.path.isdir(p.final) or os.listdir(p.final)):
        raise errors.UsageError(f"restore target {p.final} already exists and is not empty")
    if os.path.lexists(p.staging):
        raise errors.UsageError(f"restore staging directory {p.staging} already exists")


def swap_in(p: Placement) -> str:
    """Move current data aside (in place) and the staging tree into place; returns the aside path."""
    aside = ""
    if os.path.lexists(p.final):
        if p.in_place:
            os.rename(p.final, p.aside)
            aside = p.aside
        else:
            os.rmdir(p.final)  # checked empty before the restore began
    os.rename(p.staging, p.final)
    _fsync_dir(os.path.dirname(p.final))
    return aside


def discard_staging(p: Placement) -> None:
    """Remove a failed restore's partial staging tree (it holds nothing else)."""
    shutil.rmtree(p.staging, ignore_errors=True)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
