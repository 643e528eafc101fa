"""Puts a restored database tree in service: stop, move current data aside, place, start, verify.

In: a ComponentSpec of kind redis or chroma, the directory the restore stream was
written to, the facts recorded at capture time, and --force. Out: where the old
data went (never deleted) and the differences between the running service and
the facts (empty when the restore is verified). Databases are waited for by
their health check (Redis PING + loading:0, Chroma heartbeat), never a sleep.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass

from ragbackup import clock, errors
from ragbackup.mismatch import Mismatch
from ragbackup.v1 import common_pb2

from ragbackup.agent import options
from ragbackup.agent.capture import chroma, redis
from ragbackup.agent.placement import aside_path
from ragbackup.agent.restore import sync_dir
from ragbackup.agent.capture.sources import SCRATCH_PREFIX
from ragbackup.agent.services.base import ServiceController, make_controller
from ragbackup.agent.services.container_fs import export_path, import_path

log = logging.getLogger("ragbackup.agent.install")


@dataclass
class Installed:
    aside: str
    mismatches: list[Mismatch]


def database_service(spec: common_pb2.ComponentSpec) -> ServiceController:
    """The service an in-place database restore stops; UsageError when none is configured."""
    service = make_controller(options.Options(spec).service())
    if service.describe() == "no service":
        raise errors.UsageError(
            f"component {spec.name}: an in-place {spec.kind} restore must stop the database first; set "
            "`service` (\"docker:CONTAINER\" or \"systemd:UNIT\") or restore with --target")
    return service


def _in_container(spec, staging_dir: str, place) -> str:
    """Container data: keep a host copy of the current data, build the new tree, import it.

    The imported top directory keeps the owner and mode the container's directory had (the
    aside copy carries them): a scratch dir's root:root 0700 would lock out a non-root service.
    """
    where = options.Options(spec).container_path()
    aside = aside_path(os.path.join(staging_dir, spec.name), clock.stamp(clock.SYSTEM.now()))
    export_path(where.container, where.path, aside)
    work = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{spec.name}-new-", dir=staging_dir)
    try:
        place(work)
        st = os.stat(aside)
        os.chown(work, st.st_uid, st.st_gid)
        os.chmod(work, stat.S_IMODE(st.st_mode))
        import_path(where.container, work, where.path, spool_dir=staging_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return aside


_AOF_SETTINGS = ("appendonly", "appenddirname", "appendfilename")


def _with_live_aof_settings(target, facts: dict) -> dict:
    """Facts derived from an imported RDB say nothing of the server's AOF: take it from the server.

    With `appendonly yes` Redis loads only the AOF, so the RDB must become its base (as for
    native snapshots taken with AOF on), else Redis would start empty.
    """
    if facts.get("derived") != "import":
        return facts
    try:
        client = redis.connect(target)
        try:
            live = redis.collect_facts(client)
        finally:
            client.close()
    except errors.RagBackupError as exc:
        log.warning("redis: cannot read the server's AOF settings (%s); placing the RDB alone", exc)
        return facts
    return {**facts, **{k: live[k] for k in _AOF_SETTINGS}}


def install_redis(spec, restored_dir: str, facts: dict, force: bool, staging_dir: str) -> Installed:
    where = options.Options(spec).container_path()
    target = options.redis_target(spec, spec.path if where is None else "")
    facts = _with_live_aof_settings(target, facts)
    service = database_service(spec)
    service.stop(target.timeout_s)
    if where is None:
        aside = redis.place_restored_data(restored_dir, target.data_dir, facts, target.owner) or ""
        sync_dir(target.data_dir)  # a move across filesystems is a copy: on disk before Redis loads it
    else:
        aside = _in_container(spec, staging_dir,
                              lambda work: redis.place_restored_data(restored_dir, work, facts, target.owner))
    service.start()
    redis.wait_ready(target, target.timeout_s)
    if "dbsize" not in facts:
        log.warning("redis %s: the snapshot has no facts (imported); DBSIZE not verified", spec.name)
        return Installed(aside, [])
    client = redis.connect(target)
    try:
        return Installed(aside, redis.verify_facts(client, facts))
    finally:
        client.close()


def _check_chroma_version(target: chroma.ChromaTarget, facts: dict, force: bool) -> None:
    if not facts.get("version"):
        return  # facts derived from an imported chroma.sqlite3: the version that wrote it is unknown
    try:
        running = chroma._Api(target).version()
    except errors.RagBackupError:
        return  # not running: nothing to compare against before the restore
    warning = chroma.check_version_compatible(facts.get("version", ""), running, force)
    if warning:
        log.warning("%s", warning)


def install_chroma(spec, restored_dir: str, facts: dict, force: bool, staging_dir: str) -> Installed:
    where = options.Options(spec).container_path()
    target = options.chroma_target(spec)
    _check_chroma_version(target, facts, force)
    service = database_service(spec)
    service.stop(target.timeout_s)
    if where is None:
        aside = chroma.place_restored_data(restored_dir, target.persist_dir, target.owner) or ""
        sync_dir(target.persist_dir)  # a move across filesystems is a copy: on disk before Chroma opens it
    else:
        def place(work: str) -> None:
            os.rmdir(work)
            chroma.place_restored_data(restored_dir, work, target.owner)
        aside = _in_container(spec, staging_dir, place)
    service.start()
    chroma.wait_heartbeat(target.url, target.timeout_s)
    if "collections" not in facts:
        log.warning("chroma %s: the snapshot has no facts (%s); counts and probes not verified", spec.name,
                    facts.get("unverified", "imported"))
        return Installed(aside, [])
    return Installed(aside, chroma.verify_facts(target, facts))


INSTALLERS = {"redis": install_redis, "chroma": install_chroma}


def needs_install(kind: str) -> bool:
    return kind in INSTALLERS


def install(spec: common_pb2.ComponentSpec, restored_dir: str, facts: dict, force: bool,
            staging_dir: str) -> Installed:
    return INSTALLERS[spec.kind](spec, restored_dir, facts, force, staging_dir)


def import_paths(spec: common_pb2.ComponentSpec, restored_dir: str, staging_dir: str) -> str:
    """A paths/config component inside a container: keep a host copy of the current data, import the tree."""
    where = options.Options(spec).container_path()
    aside = aside_path(os.path.join(staging_dir, spec.name), clock.stamp(clock.SYSTEM.now()))
    export_path(where.container, where.path, aside)
    import_path(where.container, restored_dir, where.path, spool_dir=staging_dir)
    return aside
