"""Which code serves which component kind: the one table the generic agent consults.

In: a Component (its kind). Out: its Kind: the capture's source (a context manager yielding the
directory to capture and the facts JSON), the install that puts an in-place restore in service
where a rename will not do (a database, data inside a container), the `ragctl health` check,
and the drill's checks on a restored copy (none for plain files: the restore check is the whole
check). A kind this agent does not know is a UsageError naming the component.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ragbackup import errors
from ragbackup.config import AgentConfig
from ragbackup.v1 import agent_pb2

from ragbackup.agent.component import Component
from ragbackup.agent.drill_procs import DrillSetup
from ragbackup.agent.install import Installed, Restored
from ragbackup.agent.kinds import paths
from ragbackup.agent.kinds.chroma import capture as chroma_capture, place as chroma_place, verify as chroma_verify
from ragbackup.agent.kinds.redis import capture as redis_capture, place as redis_place, verify as redis_verify

Source = Callable[[Component, AgentConfig], AbstractContextManager[tuple[str, str]]]
DrillChecks = Callable[[str, str, dict, DrillSetup], list[agent_pb2.CheckResult]]


@dataclass(frozen=True)
class Kind:
    source: Source
    install: Callable[[Component, Restored], Installed]
    health: Callable[[Component], tuple[bool, str]]
    drill: DrillChecks | None = None
    database: bool = False  # an in-place restore stops its service and goes through `install`


_PATHS = Kind(paths.source, paths.install, paths.health)
KINDS: dict[str, Kind] = {
    "paths": _PATHS,
    "config": _PATHS,
    "redis": Kind(redis_capture.source, redis_place.install, redis_verify.health, redis_verify.drill, True),
    "chroma": Kind(chroma_capture.source, chroma_place.install, chroma_verify.health, chroma_verify.drill, True),
}


def kind_of(comp: Component) -> Kind:
    kind = KINDS.get(comp.kind)
    if kind is None:
        raise errors.UsageError(f"component {comp.name}: kind {comp.kind!r} is not supported by this agent")
    return kind
