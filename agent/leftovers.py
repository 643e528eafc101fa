"""What an interrupted restore leaves behind: `.NAME.restoring.STAMP` directories beside live data or in a
`--target`, swept so they never pile up (each can be as large as the component).

In: the agent's staging dir (a registry of restores in progress: one file per restore naming its staging
directory) and a restore's final path. Out: the leftover directories removed, with their paths for the
agent's log. A restore registers its staging directory before it writes and unregisters it when it ends;
a registration still there at the next start is a restore that was killed. Once the current data has
moved aside, the registration also names the final path (`swapping`): a restore killed after that point
is finished at the next start (the complete staged tree is put in place, the old data stays aside)
instead of swept, so the live path is never left empty. Before a restore, staging
directories of earlier restores of the same path are removed too (the controller runs one restore of a
component at a time). Only names of that exact shape are ever removed.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field

from ragbackup.agent.placement import finish_swap

_STAGING_NAME = re.compile(r"^\..+\.restoring\.\d{8}_\d{6}$")


def registry_dir(staging_dir: str) -> str:
    return os.path.join(staging_dir, "restores-in-progress")


def is_staging_name(name: str) -> bool:
    """Pure: a restore's staging directory name (`.NAME.restoring.YYYYMMDD_HHMMSS`)."""
    return bool(_STAGING_NAME.match(name))


def begin(registry: str, staging: str) -> str:
    """Register a restore's staging directory; returns the registration to pass to `swapping` and `end`."""
    os.makedirs(registry, mode=0o700, exist_ok=True)
    marker = os.path.join(registry, hashlib.sha256(staging.encode()).hexdigest()[:32])
    _write(marker, staging)
    return marker


def swapping(marker: str, staging: str, final: str) -> None:
    """Record that the current data at `final` has moved aside: the staged tree is now the one to keep."""
    _write(marker, f"{staging}\n{final}")


def end(marker: str) -> None:
    try:
        os.unlink(marker)
    except FileNotFoundError:
        pass


@dataclass
class Swept:
    """What the start-up sweep did: staging dirs removed, and (staging, final) swaps it finished."""

    removed: list[str] = field(default_factory=list)
    finished: list[tuple[str, str]] = field(default_factory=list)


def sweep_registered(registry: str) -> Swept:
    """At start: finish the swaps of restores killed after moving data aside; remove other staging dirs."""
    swept = Swept()
    if not os.path.isdir(registry):
        return swept
    for name in sorted(os.listdir(registry)):
        marker = os.path.join(registry, name)
        try:
            with open(marker, encoding="utf-8") as f:
                staging, _, final = f.read().partition("\n")
        except OSError:
            continue
        if final and is_staging_name(os.path.basename(staging)) and finish_swap(staging, final):
            swept.finished.append((staging, final))
        elif _remove(staging):
            swept.removed.append(staging)
        end(marker)
    return swept


def _write(marker: str, text: str) -> None:
    """Replace the registration atomically: a kill leaves the old text or the new, never a mix."""
    tmp = f"{marker}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker)


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
