"""Redis capture: a consistent dump.rdb (and the AOF when it is on) staged for the generic capture.

In: a Component of kind redis and the agent's config. Out: the staging directory the capture
pipeline reads, holding our own BGSAVE's dump.rdb (+ appendonlydir) copied from the host data
dir or exported from the container, and the facts read at the fork (verify.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ragbackup import errors
from ragbackup.config import AgentConfig

from ragbackup.agent.component import Component
from ragbackup.agent.kinds.redis.client import RedisTarget, client_errors, client_where, connect, redis, target_of
from ragbackup.agent.kinds.redis.verify import collect_facts, keyspace_counts
from ragbackup.agent.scratch import check_allowed, staging
from ragbackup.agent.services.container_fs import export_path

Monotonic = Callable[[], float]
Sleep = Callable[[float], None]
# Copies one name (file or directory) from the Redis data dir into a staging dir.
Fetch = Callable[[str, str], None]

WAITING, DONE, FAILED = "waiting", "done", "failed"
STARTED, BUSY_RDB, BUSY_CHILD = "started", "busy_rdb", "busy_child"
# Writes are paused only while BGSAVE forks; the server lifts the pause by itself
# after this long even if we vanish between CLIENT PAUSE and CLIENT UNPAUSE.
PAUSE_MS = 2000
POLL_S = 0.05


@dataclasses.dataclass(frozen=True)
class SaveMark:
    """What identifies the last completed RDB save: LASTSAVE and, on 7.0+, rdb_saves."""

    lastsave: int
    saves: int | None


@dataclasses.dataclass(frozen=True)
class BgsaveResult:
    """A finished BGSAVE: keys per db at the fork (if writes were paused) and its save mark."""

    keyspace: dict[str, int]
    mark: SaveMark
    at_fork: bool


def save_mark(persistence: Mapping[str, Any]) -> SaveMark:
    """The save mark from INFO persistence fields."""
    saves = persistence.get("rdb_saves")
    return SaveMark(int(persistence["rdb_last_save_time"]), None if saves is None else int(saves))


def bgsave_progress(persistence: Mapping[str, Any], before: SaveMark) -> str:
    """WAITING, DONE or FAILED for a BGSAVE started after `before` was read.

    Done needs all three: no RDB child, last status ok, and the save mark moved
    (LASTSAVE changed, or rdb_saves grew: LASTSAVE has one-second resolution).
    """
    if int(persistence["rdb_bgsave_in_progress"]) != 0:
        return WAITING
    if str(persistence["rdb_last_bgsave_status"]) != "ok":
        return FAILED
    now = save_mark(persistence)
    if now.lastsave != before.lastsave:
        return DONE
    if now.saves is not None and before.saves is not None and now.saves > before.saves:
        return DONE
    return WAITING


def classify_bgsave_reply(reply: str) -> str:
    """STARTED, BUSY_RDB (another RDB save runs) or BUSY_CHILD (AOF rewrite or module fork).

    Unknown replies raise Unhealthy with the reply text.
    """
    text = reply.lower()
    if "background saving started" in text:
        return STARTED
    if "already in progress" in text:
        return BUSY_RDB
    if "another child process is active" in text or ("aof" in text and "rewrit" in text):
        return BUSY_CHILD
    raise errors.Unhealthy(f"unexpected BGSAVE reply: {reply}")


def child_active(persistence: Mapping[str, Any]) -> bool:
    """True while any fork child (RDB save, AOF rewrite, module) runs or an AOF rewrite is scheduled."""
    keys = ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "aof_rewrite_scheduled",
            "module_fork_in_progress")
    return any(int(persistence.get(k, 0)) != 0 for k in keys)


def _pause_writes(client: redis.Redis) -> bool:
    """CLIENT PAUSE WRITE (6.2+) so INFO keyspace and the fork see the same data; False if refused."""
    try:
        client.client_pause(PAUSE_MS, all=False)
        return True
    except redis.ResponseError:
        return False


def _wait_past_lastsave(client: redis.Redis, mark: SaveMark, sleep: Sleep) -> None:
    """Without rdb_saves (Redis < 7), make sure our save ends in a later second than the last one."""
    if mark.saves is not None:
        return
    while int(client.time()[0]) <= mark.lastsave:
        sleep(POLL_S)


def _fork_once(client: redis.Redis) -> tuple[str, SaveMark, dict[str, int], bool]:
    """Read the save mark and keyspace, then BGSAVE, all with writes paused if allowed."""
    paused = _pause_writes(client)
    try:
        mark = save_mark(client.info("persistence"))
        keyspace = keyspace_counts(client.info("keyspace"))
        try:
            reply = client.execute_command("BGSAVE")
            # redis-py turns the status reply into True; without SCHEDULE and outside
            # MULTI the only success reply is "Background saving started".
            reply = reply if isinstance(reply, str) else "Background saving started"
        except redis.ResponseError as err:
            reply = str(err)
        return classify_bgsave_reply(reply), mark, keyspace, paused
    finally:
        if paused:
            client.client_unpause()


def _poll(client: redis.Redis, done: Callable[[Mapping[str, Any]], bool], deadline: float,
          what: str, monotonic: Monotonic, sleep: Sleep) -> Mapping[str, Any]:
    """Poll INFO persistence until `done(fields)`; Unhealthy naming `what` at the deadline."""
    while True:
        fields = client.info("persistence")
        if done(fields):
            return fields
        if monotonic() >= deadline:
            where, _ = client_where(client)
            raise errors.Unhealthy(f"redis {where}: timed out waiting for {what}")
        sleep(POLL_S)


def bgsave_and_wait(client: redis.Redis, timeout_s: float, monotonic: Monotonic = time.monotonic,
                    sleep: Sleep = time.sleep) -> BgsaveResult:
    """Run our own BGSAVE and wait until it has finished successfully.

    A save or AOF rewrite already running is waited for, then ours is issued (its
    file would predate our facts). Unhealthy if the save fails or takes too long.
    """
    deadline = monotonic() + timeout_s
    with client_errors(client):
        while True:
            _wait_past_lastsave(client, save_mark(client.info("persistence")), sleep)
            outcome, before, keyspace, at_fork = _fork_once(client)
            if outcome == STARTED:
                break
            _poll(client, lambda f: not child_active(f), deadline,
                  "a running save/AOF rewrite to finish before our BGSAVE", monotonic, sleep)
        fields = _poll(client, lambda f: bgsave_progress(f, before) != WAITING, deadline,
                       "BGSAVE to finish", monotonic, sleep)
        if bgsave_progress(fields, before) == FAILED:
            where, _ = client_where(client)
            raise errors.Unhealthy(
                f"redis {where}: BGSAVE failed (rdb_last_bgsave_status:{fields['rdb_last_bgsave_status']});"
                " see the Redis log (disk full? permissions on dir?)")
        return BgsaveResult(keyspace, save_mark(fields), at_fork)


@contextlib.contextmanager
def aof_rewrite_paused(client: redis.Redis, timeout_s: float = 300.0, monotonic: Monotonic = time.monotonic,
                       sleep: Sleep = time.sleep) -> Iterator[None]:
    """Inside: automatic AOF rewrites are off and none is running; the old setting comes back after."""
    key = "auto-aof-rewrite-percentage"
    with client_errors(client):
        old = client.config_get(key)[key]
        client.config_set(key, 0)
    try:
        with client_errors(client):
            _poll(client, lambda f: int(f.get("aof_rewrite_in_progress", 0)) == 0
                  and int(f.get("aof_rewrite_scheduled", 0)) == 0,
                  monotonic() + timeout_s, "the running AOF rewrite to finish", monotonic, sleep)
        yield
    finally:
        with client_errors(client):
            client.config_set(key, old)


def copy_from_host(data_dir: str, name: str, staging_dir: str) -> None:
    """Copy `name` (file or directory) from the host data dir, keeping modes and mtimes."""
    src, dst = os.path.join(data_dir, name), os.path.join(staging_dir, name)
    if os.path.isdir(src):
        shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
    else:
        shutil.copy2(src, dst)


def _save_still_ours(client: redis.Redis, mark: SaveMark) -> bool:
    """No other save started or finished since ours (so dump.rdb is still our file)."""
    fields = client.info("persistence")
    return int(fields["rdb_bgsave_in_progress"]) == 0 and save_mark(fields) == mark


def _capture_rdb(client: redis.Redis, target: RedisTarget, staging_dir: str, fetch: Fetch) -> BgsaveResult:
    """BGSAVE, copy the RDB, and retry if another save replaced it meanwhile."""
    for _ in range(3):
        result = bgsave_and_wait(client, target.timeout_s)
        dst = os.path.join(staging_dir, target.rdb_filename)
        if os.path.exists(dst):
            os.unlink(dst)
        fetch(target.rdb_filename, staging_dir)
        with client_errors(client):
            if _save_still_ours(client, result.mark):
                return result
    raise errors.Unhealthy(f"redis {target.where}: other saves kept replacing {target.rdb_filename} while copying")


def prepare_capture(target: RedisTarget, staging_dir: str, fetch: Fetch | None = None) -> dict[str, Any]:
    """Put a consistent dump.rdb (and appendonlydir when AOF is on) in `staging_dir`; return facts.

    `fetch(name, staging_dir)` copies from the data dir (default: the host path).
    """
    fetch = fetch or (lambda name, dst: copy_from_host(target.data_dir, name, dst))
    os.makedirs(staging_dir, exist_ok=True)
    client = connect(target)
    try:
        facts = collect_facts(client)
        if facts["dbfilename"] != target.rdb_filename:
            raise errors.ConfigError(
                f"redis {target.where}: dbfilename is {facts['dbfilename']!r}, config says {target.rdb_filename!r}")
        result = _capture_rdb(client, target, staging_dir, fetch)
        facts.update(dbsize=result.keyspace, total_keys=sum(result.keyspace.values()),
                     keyspace_at_fork=result.at_fork)
        if facts["appendonly"]:  # 7.0+: the appendonlydir; older: the single AOF file
            with aof_rewrite_paused(client, target.timeout_s):
                fetch(facts["appenddirname"] or facts["appendfilename"], staging_dir)
        return facts
    finally:
        client.close()


@contextlib.contextmanager
def source(comp: Component, cfg: AgentConfig) -> Iterator[tuple[str, str]]:
    """(staging directory holding the dump, facts JSON) for a capture of `comp`."""
    where = comp.container_path()
    target = target_of(comp, comp.path if where is None else "")
    if where is None:
        check_allowed(comp.path, cfg)
        fetch = None
    else:
        def fetch(name: str, dst: str) -> None:
            export_path(where.container, f"{where.path.rstrip('/')}/{name}", os.path.join(dst, name)
                        if _is_dir_in_container(name) else dst)
    with staging(cfg, comp.name) as tmp:
        facts = prepare_capture(target, tmp, fetch)
        yield tmp, json.dumps(facts)


def _is_dir_in_container(name: str) -> bool:
    """appendonlydir is a directory; dump.rdb and appendonly.aof are files."""
    return not (name.endswith(".rdb") or name.endswith(".aof"))
