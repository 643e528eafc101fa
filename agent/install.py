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
from ragbackup.v1 import common_pb2

from ragbackup.agent import options
from ragbackup.agent.capture import chroma, redis
from ragbackup.agent.restore import sync_dir
from ragbackup.agent.capture.sources import SCRATCH_PREFIX
from ragbackup.agent.services.base import ServiceController, make_controller
from ragbackup.agent.services.container_fs import export_path, import_path

log = logging.getLogger("ragbackup.agent.install")


@dataclass
class Installed:
    aside: str
    mismatches: list[str]


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
    aside = os.path.join(staging_dir, f"{spec.name}.corrupted.{clock.stamp(clock.SYSTEM.now())}")
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


def install_redis(spec, restored_dir: str, facts: dict, force: bool, staging_dir: str) -> Installed:
    where = options.Options(spec).container_path()
    target = options.redis_target(spec, spec.path if where is None else "")
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
        log.warning("chroma %s: the snapshot has no facts (imported); counts and probes not verified", spec.name)
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
    aside = os.path.join(staging_dir, f"{spec.name}.corrupted.{clock.stamp(clock.SYSTEM.now())}")
    export_path(where.container, where.path, aside)
    import_path(where.container, restored_dir, where.path, spool_dir=staging_dir)
    return aside
