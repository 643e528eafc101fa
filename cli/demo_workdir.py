"""Where `ragctl demo` works, and what it may delete there: only what a demo created.

In: the --workdir path, --force, --keep. Out: a Workdir whose entries (fixed names) and marker file
`.rag-backup-demo` are the demo's; `decide` (pure) says whether the dir is created, used as it is,
cleared of a previous demo's entries, or refused (UsageError, exit 2). `cleanup` removes only the
demo's entries and the dir itself when the demo created it.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from ragbackup import errors

MARKER = ".rag-backup-demo"
# Everything a demo writes in its work dir, by name.
ENTRIES = ("data", "stack", "docker", "logs", "pristine", "restored")


@dataclass(frozen=True)
class Decision:
    """What to do with the work dir: action is "create", "use" or "reuse" (clear a previous demo's entries)."""

    action: str
    created_dir: bool  # the dir is the demo's own (removed at cleanup when empty)


def decide(exists: bool, names: list[str], marker: dict | None, force: bool, path: str) -> Decision:
    """Pure: the decision for a work dir holding `names`, with the previous demo's `marker` (None: none)."""
    if not exists:
        return Decision("create", True)
    if marker is not None:
        return Decision("reuse", bool(marker.get("created_dir")))
    if not names:
        return Decision("use", False)
    if not force:
        raise errors.UsageError(f"--workdir {path} exists, is not empty and is not a previous demo's work dir "
                                f"(no {MARKER} file); choose another dir or pass --force to add the demo's "
                                "files beside what is there")
    clash = sorted(set(names) & set(ENTRIES))
    if clash:
        raise errors.UsageError(f"--workdir {path} already holds {', '.join(clash)}, which the demo did not create "
                                "and would have to replace; choose another dir")
    return Decision("use", False)


def _read_marker(path: str) -> dict | None:
    try:
        with open(os.path.join(path, MARKER)) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise errors.UsageError(f"{os.path.join(path, MARKER)} is not a demo marker ({exc}); remove it or choose "
                                "another --workdir") from None
    return data if isinstance(data, dict) else {}


class Workdir:
    """The demo's work dir: prepared at start, cleaned (unless kept) at the end."""

    def __init__(self, path: str, force: bool = False):
        self.path = os.path.abspath(path)
        self.force = force
        self.decision: Decision | None = None

    def sub(self, name: str) -> str:
        assert name in ENTRIES, name
        return os.path.join(self.path, name)

    def prepare(self) -> Decision:
        """Decide, clear a previous demo's entries if any, and write the marker; returns the decision."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise errors.UsageError(f"--workdir {self.path} exists and is not a directory")
        exists = os.path.isdir(self.path)
        names = os.listdir(self.path) if exists else []
        self.decision = decide(exists, names, _read_marker(self.path) if exists else None, self.force, self.path)
        if self.decision.action == "reuse":
            self._remove_entries()
        os.makedirs(self.path, exist_ok=True)
        with open(os.path.join(self.path, MARKER), "w") as f:
            json.dump({"created_dir": self.decision.created_dir, "entries": list(ENTRIES)}, f)
        return self.decision

    def _remove_entries(self) -> None:
        for name in ENTRIES:
            p = os.path.join(self.path, name)
            if os.path.islink(p) or os.path.isfile(p):
                os.unlink(p)
            elif os.path.isdir(p):
                shutil.rmtree(p)

    def cleanup(self) -> None:
        """Remove the demo's entries and marker; the dir too when the demo created it and nothing else is there."""
        self._remove_entries()
        marker = os.path.join(self.path, MARKER)
        if os.path.exists(marker):
            os.unlink(marker)
        if self.decision is not None and self.decision.created_dir and not os.listdir(self.path):
            os.rmdir(self.path)
