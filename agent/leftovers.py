"""What an interrupted restore leaves behind: `.NAME.restoring.STAMP` directories beside live data or in a
`--target`, swept so they never pile up (each can be as large as the component).

In: the agent's staging dir (a registry of restores in progress: one file per restore naming its staging
directory) and a restore's final path. Out: the leftover directories removed, with their paths for the
agent's log. A restore registers its staging directory before it writes and unregisters it when it ends;
a registration still there at the next start is a restore that was killed. Before a restore, staging
directories of earlier restores of the same path are removed too (the controller runs one restore of a
component at a time). Only names of that exact shape are ever removed.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil

_STAGING_NAME = re.compile(r"^\..+\.restoring\.\d{8}_\d{6}$")


def registry_dir(staging_dir: str) -> str:
    return os.path.join(staging_dir, "restores-in-progress")


def is_staging_name(name: str) -> bool:
    """Pure: a restore's staging directory name (`.NAME.restoring.YYYYMMDD_HHMMSS`)."""
    return bool(_STAGING_NAME.match(name))


def begin(registry: str, staging: str) -> str:
    """Register a restore's staging directory; returns the registration to pass to `end`."""
    os.makedirs(registry, mode=0o700, exist_ok=True)
    marker = os.path.join(registry, hashlib.sha256(staging.encode()).hexdigest()[:32])
    with open(marker, "w", encoding="utf-8") as f:
        f.write(staging)
    return marker


def end(marker: str) -> None:
    try:
        os.unlink(marker)
    except FileNotFoundError:
        pass


def sweep_registered(registry: str) -> list[str]:
    """At start: remove the staging directories of restores that never ended; returns what was removed."""
    removed = []
    if not os.path.isdir(registry):
        return removed
    for name in sorted(os.listdir(registry)):
        marker = os.path.join(registry, name)
        try:
            with open(marker, encoding="utf-8") as f:
                staging = f.read()
        except OSError:
            continue
        if _remove(staging):
            removed.append(staging)
        end(marker)
    return removed


def sweep_siblings(final: str) -> list[str]:
    """Before a restore into `final`: remove staging directories earlier restores of it left."""
    parent, base = os.path.split(final.rstrip(os.sep))
    prefix = f".{base}.restoring."
    try:
        names = os.listdir(parent or ".")
    except OSError:
        return []
    return [path for path in (os.path.join(parent, n) for n in sorted(names) if n.startswith(prefix))
            if _remove(path)]


def _remove(path: str) -> bool:
    """Remove a staging directory (never a link, never a name of another shape); True when removed."""
    if not is_staging_name(os.path.basename(path)) or os.path.islink(path) or not os.path.isdir(path):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)
