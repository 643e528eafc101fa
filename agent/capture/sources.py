"""What a capture reads, per component kind, and how it is made consistent.

In: a ComponentSpec from the controller and the agent's config. Out: a context
manager yielding (directory to capture, facts JSON) to the capture pipeline:
`paths`/`config` as they are; `redis` a BGSAVE'd dump (+ AOF dir) staged aside;
`chroma` an online SQLite backup copy, or the live dir while paused or stopped, with
facts taken from those very bytes.
Data inside a container (no bind mount) is exported through the Docker API.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Iterator

from ragbackup import errors
from ragbackup.config import AgentConfig
from ragbackup.v1 import common_pb2

from ragbackup.agent import options
from ragbackup.agent.capture import chroma, chroma_facts, redis
from ragbackup.agent.services.base import make_controller
from ragbackup.agent.services.container_fs import export_path


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


@contextlib.contextmanager
def _paths_source(spec, cfg: AgentConfig) -> Iterator[tuple[str, str]]:
    where = options.Options(spec).container_path()
    facts = json.dumps({"kind": spec.kind})
    if where is None:
        yield check_allowed(spec.path, cfg), facts
        return
    with staging(cfg, spec.name) as tmp:
        export_path(where.container, where.path, tmp)
        yield tmp, facts


@contextlib.contextmanager
def _redis_source(spec, cfg: AgentConfig) -> Iterator[tuple[str, str]]:
    where = options.Options(spec).container_path()
    target = options.redis_target(spec, spec.path if where is None else "")
    if where is None:
        check_allowed(spec.path, cfg)
        fetch = None
    else:
        def fetch(name: str, dst: str) -> None:
            export_path(where.container, f"{where.path.rstrip('/')}/{name}", os.path.join(dst, name)
                        if _is_dir_in_container(name) else dst)
    with staging(cfg, spec.name) as tmp:
        facts = redis.prepare_capture(target, tmp, fetch)
        yield tmp, json.dumps(facts)


def _is_dir_in_container(name: str) -> bool:
    """appendonlydir is a directory; dump.rdb and appendonly.aof are files."""
    return not (name.endswith(".rdb") or name.endswith(".aof"))


@contextlib.contextmanager
def _chroma_source(spec, cfg: AgentConfig) -> Iterator[tuple[str, str]]:
    """The bytes to capture and facts computed from exactly those bytes (chroma_facts).

    `online`: the online copy, whose facts are taken from the copy (the live server has
    moved on by then). `pause`/`stop`: the persist dir while the service is held, its facts
    taken inside the hold; or, for data inside a container, its export made while the
    service is held, captured and read after. Only the version is asked of the server
    first (a paused or stopped server does not answer), and the facts engine is started
    before the copy or the hold, so its start-up is not spent holding the service.
    """
    o = options.Options(spec)
    mode, where = o.consistency(), o.container_path()
    target = options.chroma_target(spec)
    if where is None:
        check_allowed(spec.path, cfg)
    if mode == "online" and where is not None:
        raise errors.UsageError(f"component {spec.name}: consistency \"online\" needs the persist dir on "
                                "this host (path); for data inside a container use \"pause\" or \"stop\"")
    version = chroma.server_version(target)
    with staging(cfg, f"{spec.name}-facts") as scratch, chroma_facts.engine(target, version, scratch) as read:
        if mode == "online":
            with staging(cfg, spec.name) as tmp:
                chroma.online_copy(spec.path, tmp)
                yield tmp, _facts_json(read(tmp), mode)
            return
        service = make_controller(o.service())
        if where is None:
            with _held(service, mode, target):
                yield spec.path, _facts_json(read(spec.path), mode)
            return
        with staging(cfg, spec.name) as tmp:
            with _held(service, mode, target):  # the export is a copy: the service waits for it only
                export_path(where.container, where.path, tmp)
            yield tmp, _facts_json(read(tmp), mode)


def _facts_json(facts: dict, mode: str) -> str:
    return json.dumps({**facts, "consistency": mode})


@contextlib.contextmanager
def _held(service, mode: str, target: chroma.ChromaTarget) -> Iterator[None]:
    """Pause or stop the service for the copy; always resume it, then wait until it answers."""
    if service.describe() == "no service":
        raise errors.UsageError(f"consistency \"{mode}\" needs `service` (e.g. \"docker:rag-chromadb-prod\")")
    if mode == "pause":
        service.pause()
    else:
        service.stop(target.timeout_s)
    try:
        yield
    finally:
        if mode == "pause":
            service.unpause()
        else:
            service.start()
        chroma.wait_heartbeat(target.url, target.timeout_s)


_SOURCES = {"paths": _paths_source, "config": _paths_source, "redis": _redis_source, "chroma": _chroma_source}


def open_source(spec: common_pb2.ComponentSpec, cfg: AgentConfig):
    """Context manager yielding (root directory, facts JSON) for a capture of `spec`."""
    source = _SOURCES.get(spec.kind)
    if source is None:
        raise errors.UsageError(f"component {spec.name}: kind {spec.kind!r} is not supported by this agent")
    return source(spec, cfg)
