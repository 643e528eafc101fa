"""Redis restore: with Redis stopped, the restored RDB placed where it loads it, then Redis checked.

In: a Component of kind redis restored in place, and the restored tree (agent/install.Restored).
Out: the current data dir moved aside (agent/placement.move_aside, never deleted), the RDB (and
an AOF built from it when AOF is on) placed and given the service's owner, Redis started and
waited for (loading:0), and its DBSIZE per db compared with the facts (verify.py).
"""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from typing import Any

from ragbackup import errors
from ragbackup.clock import SYSTEM, Clock, stamp

from ragbackup.agent.component import Component
from ragbackup.agent.install import Installed, Restored, database_service, in_container
from ragbackup.agent.kinds.redis.client import RedisTarget, connect, target_of
from ragbackup.agent.kinds.redis.verify import collect_facts, verify_facts, wait_ready
from ragbackup.agent.placement import chown_tree, move_aside, recreate_dir
from ragbackup.agent.restore import sync_dir

log = logging.getLogger("ragbackup.agent.kinds.redis")


def aof_manifest(base_name: str, incr_name: str) -> str:
    """A Redis 7 AOF manifest: the RDB-format BASE `base_name`, then the INCR file `incr_name`."""
    return f"file {base_name} seq 1 type b\nfile {incr_name} seq 1 type i\n"


def _empty_data_dir(data_dir: str, clock: Clock, owner: tuple[int, int] | None) -> str | None:
    """Move the data dir aside as its sibling `<data_dir>.corrupted.YYYYMMDD_HHMMSS` (placement.move_aside)
    and put an empty one back with the same owner and mode; None if there was nothing to keep.

    A mount point stays where it is and its contents move. Files of the data dir other than
    Redis's own (a nodes.conf, say) are in the aside copy too.
    """
    if not os.path.isdir(data_dir):
        os.makedirs(data_dir, 0o750)
        chown_tree(data_dir, owner if os.geteuid() == 0 else None)
        return None
    if not os.listdir(data_dir):
        return None
    aside = move_aside(data_dir, stamp(clock.now()))
    recreate_dir(data_dir, aside)
    return aside


def _write_synced(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _aof_from_rdb(rdb_path: str, data_dir: str, facts: Mapping[str, Any]) -> str:
    """Build the AOF Redis will load from the restored RDB; returns the name placed in data_dir."""
    appendfilename = facts.get("appendfilename") or "appendonly.aof"
    dirname = facts.get("appenddirname")
    if not dirname:  # Redis < 7: one AOF file; a file starting with "REDIS" loads as an RDB preamble.
        shutil.copy2(rdb_path, os.path.join(data_dir, appendfilename))
        return appendfilename
    aof_dir = os.path.join(data_dir, dirname)
    os.mkdir(aof_dir, 0o755)
    base, incr = f"{appendfilename}.1.base.rdb", f"{appendfilename}.1.incr.aof"
    shutil.copy2(rdb_path, os.path.join(aof_dir, base))
    # An empty INCR file of our own: without one Redis opens <name>.1.incr.aof with O_APPEND at start,
    # and in a container dir (import merges, cannot delete) that can be the old instance's file,
    # whose writes would come back at the next restart.
    _write_synced(os.path.join(aof_dir, incr), "")
    _write_synced(os.path.join(aof_dir, f"{appendfilename}.manifest"), aof_manifest(base, incr))
    return dirname


def place_restored_data(restored_dir: str, data_dir: str, facts: Mapping[str, Any],
                        owner: tuple[int, int] | None = (999, 999), clock: Clock = SYSTEM) -> str | None:
    """With Redis stopped: move current data aside, place the restored RDB, chown; return the aside dir.

    The current data dir moves to its sibling `<data_dir>.corrupted.YYYYMMDD_HHMMSS/`
    (never deleted; None if it was empty) and an empty one with the same owner and mode
    takes its place (a mount point stays: its contents move). The restored RDB is moved
    in (so `restored_dir` is consumed).

    AOF on at backup time: Redis with `appendonly yes` loads only the AOF and ignores
    dump.rdb, so a placed RDB next to an old appendonlydir would silently serve the old
    data. Redis's documented switch-over (start with appendonly no, load the RDB,
    `CONFIG SET appendonly yes`, wait for the rewrite) needs control of the server's
    config at start, which this step does not have. We choose instead to build the AOF
    from the restored RDB: a new appendonlydir whose manifest names that RDB as its BASE
    file plus an empty INCR file, exactly the layout Redis 7 writes itself after a rewrite
    with aof-use-rdb-preamble. Redis starts with the config unchanged, loads precisely the
    snapshot the facts describe, and appends new writes to a fresh INCR file. The
    captured appendonlydir is not used: it was copied after the fork and can hold writes
    the facts do not count; it stays in the snapshot (restored_dir) for manual recovery.
    """
    rdb_name = facts.get("dbfilename") or "dump.rdb"
    src = os.path.join(restored_dir, rdb_name)
    if not os.path.isfile(src):
        raise errors.UsageError(f"restored data has no {rdb_name} in {restored_dir}")
    aside = _empty_data_dir(data_dir, clock, owner)
    dst = os.path.join(data_dir, rdb_name)
    shutil.move(src, dst)
    placed = [dst]
    if facts.get("appendonly"):
        placed.append(os.path.join(data_dir, _aof_from_rdb(dst, data_dir, facts)))
    for path in placed:
        chown_tree(path, owner)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return aside


_AOF_SETTINGS = ("appendonly", "appenddirname", "appendfilename")


def _with_live_aof_settings(target: RedisTarget, facts: dict) -> dict:
    """Facts derived from an imported RDB say nothing of the server's AOF: take it from the server.

    With `appendonly yes` Redis loads only the AOF, so the RDB must become its base (as for
    native snapshots taken with AOF on), else Redis would start empty.
    """
    if facts.get("derived") != "import":
        return facts
    try:
        client = connect(target)
        try:
            live = collect_facts(client)
        finally:
            client.close()
    except errors.RagBackupError as exc:
        log.warning("redis: cannot read the server's AOF settings (%s); placing the RDB alone", exc)
        return facts
    return {**facts, **{k: live[k] for k in _AOF_SETTINGS}}


def install(comp: Component, restored: Restored) -> Installed:
    """Stop Redis, place the restored RDB (host data dir or container), start it, wait, compare DBSIZE."""
    where = comp.container_path()
    target = target_of(comp, comp.path if where is None else "")
    facts = _with_live_aof_settings(target, restored.facts)
    service = database_service(comp)
    service.stop(target.timeout_s)
    if where is None:
        aside = place_restored_data(restored.path, target.data_dir, facts, target.owner) or ""
        sync_dir(target.data_dir)  # a move across filesystems is a copy: on disk before Redis loads it
    else:
        aside = in_container(comp, restored.staging_dir,
                             lambda work: place_restored_data(restored.path, work, facts, target.owner))
    service.start()
    wait_ready(target, target.timeout_s)
    if "dbsize" not in facts:
        log.warning("redis %s: the snapshot has no facts (imported); DBSIZE not verified", comp.name)
        return Installed(aside, [])
    client = connect(target)
    try:
        return Installed(aside, verify_facts(client, facts))
    finally:
        client.close()
