"""Chroma capture: the persist dir, consistent, with facts computed from exactly the bytes captured.

In: a Component of kind chroma and the agent's config. Out: the directory the capture pipeline
reads and its facts (facts.py): `online`, a copy made while the server runs (SQLite through its
online-backup API, checked with quick_check, then the segment files, copied again if they moved);
`pause`/`stop`, the persist dir (or the container's export) while the service is held.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import urllib.parse
from typing import Iterator

from ragbackup import errors
from ragbackup.config import AgentConfig
from ragbackup.component_options import ChromaOptions

from ragbackup.agent.component import Component
from ragbackup.agent.kinds.chroma import facts as chroma_facts
from ragbackup.agent.kinds.chroma.api import ChromaTarget, server_version, target_of, wait_heartbeat
from ragbackup.agent.scratch import check_allowed, staging
from ragbackup.agent.services.base import make_controller
from ragbackup.agent.services.container_fs import export_path

SQLITE_NAME = "chroma.sqlite3"
# Files SQLite owns next to the database; the online backup reads through them.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def quick_check(path: str) -> str:
    """`PRAGMA quick_check` of the SQLite file at `path`: "ok", or what SQLite reports."""
    try:
        conn = sqlite3.connect(path)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        return f"error: {err}"
    return "; ".join(str(r[0]) for r in rows)


def _backup_sqlite(src: str, dst: str) -> None:
    """Copy a live SQLite database with the online-backup API, reading the source read-only."""
    if os.path.exists(dst):
        os.unlink(dst)
    source = sqlite3.connect(f"file:{urllib.parse.quote(src)}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)  # one step: a consistent copy under one read lock
        finally:
            target.close()
    finally:
        source.close()
    shutil.copystat(src, dst)


def _tree_state(root: str, names: list[str]) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under `names` in `root`: detects writes during a copy."""
    state = {}
    for name in names:
        path = os.path.join(root, name)
        paths = [path] if not os.path.isdir(path) else [
            os.path.join(d, f) for d, _, files in os.walk(path) for f in files]
        for p in paths:
            st = os.lstat(p)
            state[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return state


def _copy_names(src_root: str, dst_root: str, names: list[str]) -> None:
    for name in names:
        src, dst = os.path.join(src_root, name), os.path.join(dst_root, name)
        if os.path.isdir(src) and not os.path.islink(src):
            if os.path.exists(dst):
                shutil.rmtree(dst)
            shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)


def _segment_names(persist_dir: str) -> list[str]:
    """Everything in the persist dir except the SQLite database and its side files."""
    skip = {SQLITE_NAME} | {SQLITE_NAME + s for s in SQLITE_SIDE_FILES}
    return sorted(n for n in os.listdir(persist_dir) if n not in skip)


def online_copy(persist_dir: str, staging_dir: str, attempts: int = 3) -> None:
    """Copy a running Chroma's persist dir: SQLite via online backup + quick_check, then segments.

    The segment dirs (one UUID dir of HNSW files per vector segment) are plain files
    that the server may rewrite while we copy; the copy is retried if any file's size or
    mtime changed meanwhile, and Unhealthy raised if they never hold still (then use the
    `pause` or `stop` consistency mode).
    """
    os.makedirs(staging_dir, exist_ok=True)
    shutil.copystat(persist_dir, staging_dir)
    db_copy = os.path.join(staging_dir, SQLITE_NAME)
    _backup_sqlite(os.path.join(persist_dir, SQLITE_NAME), db_copy)
    result = quick_check(db_copy)
    if result != "ok":
        raise errors.IntegrityError(f"{db_copy}: PRAGMA quick_check on the copy of the Chroma database: {result}")
    names = _segment_names(persist_dir)
    for _ in range(attempts):
        before = _tree_state(persist_dir, names)
        _copy_names(persist_dir, staging_dir, names)
        if _tree_state(persist_dir, names) == before:
            return
    raise errors.Unhealthy(f"{persist_dir}: segment files kept changing during {attempts} copies")


# ---------------------------------------------------------------- the capture's source


@contextlib.contextmanager
def source(comp: Component, cfg: AgentConfig) -> Iterator[tuple[str, str]]:
    """The bytes to capture and facts computed from exactly those bytes (facts.py).

    `online`: the online copy, whose facts are taken from the copy (the live server has
    moved on by then). `pause`/`stop`: the persist dir while the service is held, its facts
    taken inside the hold; or, for data inside a container, its export made while the
    service is held, captured and read after. Only the version is asked of the server
    first (a paused or stopped server does not answer), and the facts engine is started
    before the copy or the hold, so its start-up is not spent holding the service.
    """
    mode, where = comp.typed(ChromaOptions).consistency, comp.container_path()
    target = target_of(comp)
    if where is None:
        check_allowed(comp.path, cfg)
    if mode == "online" and where is not None:
        raise errors.UsageError(f"component {comp.name}: consistency \"online\" needs the persist dir on "
                                "this host (path); for data inside a container use \"pause\" or \"stop\"")
    version = server_version(target)
    with staging(cfg, f"{comp.name}-facts") as scratch, chroma_facts.engine(target, version, scratch) as read:
        if mode == "online":
            with staging(cfg, comp.name) as tmp:
                online_copy(comp.path, tmp)
                yield tmp, _facts_json(read(tmp), mode)
            return
        service = make_controller(comp.service())
        if where is None:
            with _held(service, mode, target):
                yield comp.path, _facts_json(read(comp.path), mode)
            return
        with staging(cfg, comp.name) as tmp:
            with _held(service, mode, target):  # the export is a copy: the service waits for it only
                export_path(where.container, where.path, tmp)
            yield tmp, _facts_json(read(tmp), mode)


def _facts_json(facts: dict, mode: str) -> str:
    return json.dumps({**facts, "consistency": mode})


@contextlib.contextmanager
def _held(service, mode: str, target: ChromaTarget) -> Iterator[None]:
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
        wait_heartbeat(target.url, target.timeout_s)
