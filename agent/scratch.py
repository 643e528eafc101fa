"""The agent's private scratch directories, and the paths it may read and write.

In: the agent's config (staging_dir, allowed_paths). Out: `staging(cfg, name)`, a scratch
directory for one capture, restore, check or drill, removed afterwards (named with
SCRATCH_PREFIX, so a startup sweep removes only its own), and `check_allowed`, the real path
of a component's data, or a UsageError when it lies outside allowed_paths.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from ragbackup import errors
from ragbackup.config import AgentConfig

# Scratch directories start with this, so a startup sweep removes only its own.
SCRATCH_PREFIX = ".rag-backup-"


def check_allowed(path: str, cfg: AgentConfig) -> str:
    """The real path of `path` if it lies under one of the agent's allowed_paths."""
    real = os.path.realpath(path)
    for allowed in cfg.allowed_paths:
        base = os.path.realpath(allowed)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return real
    raise errors.UsageError(f"path {path} is outside the agent's allowed_paths "
                            f"({', '.join(cfg.allowed_paths)}, set in {cfg.source})")


@contextlib.contextmanager
def staging(cfg: AgentConfig, name: str) -> Iterator[str]:
    """A private scratch directory for one capture or restore, removed afterwards."""
    os.makedirs(cfg.staging_dir, mode=0o700, exist_ok=True)
    path = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{name}-", dir=cfg.staging_dir)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
