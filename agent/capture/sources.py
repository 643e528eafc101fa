"""What a capture reads, per component kind.

In: a ComponentSpec from the controller and the agent's config. Out: a context
manager yielding (directory to capture, facts JSON). `paths`/`config` capture
their path as is; database kinds stage a consistent copy first.
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator

from ragbackup import errors
from ragbackup.config import AgentConfig
from ragbackup.v1 import common_pb2


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
def open_source(spec: common_pb2.ComponentSpec, cfg: AgentConfig) -> Iterator[tuple[str, str]]:
    """Yield (root directory, facts JSON) for a capture of `spec`."""
    if spec.kind in ("paths", "config"):
        root = check_allowed(spec.path, cfg)
        yield root, json.dumps({"kind": spec.kind})
        return
    raise errors.UsageError(f"component {spec.name}: kind {spec.kind!r} is not supported by this agent")
