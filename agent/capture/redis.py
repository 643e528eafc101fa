"""Redis steps around the generic file capture/restore: snapshot, copy, place, verify.

In: a RedisTarget (connection + host data dir). Out: a staging dir holding dump.rdb
(+ appendonlydir) and facts; on restore, the data placed for Redis to load, then checked.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ragbackup import errors
from ragbackup.clock import SYSTEM, Clock, stamp
from ragbackup.lazy import lazy_import
from ragbackup.mismatch import Mismatch
from ragbackup.secret import Secret

from ragbackup.agent.placement import move_aside, recreate_dir

redis = lazy_import("redis")

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
class RedisTarget:
    """How to reach one Redis and where its `dir` is on this host."""

    data_dir: str
    host: str = "127.0.0.1"
    port: int = 6379
    password: Secret | None = None
    username: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    rdb_filename: str = "dump.rdb"
    owner: tuple[int, int] = (999, 999)
    timeout_s: float = 300.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


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


# ---------------------------------------------------------------- pure decisions


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


def keyspace_counts(keyspace_info: Mapping[str, Any]) -> dict[str, int]:
    """`{"db0": keys, ...}` from INFO keyspace; db0 is always present."""
    counts = {"db0": 0}
    for db, stats in keyspace_info.items():
        if str(db).startswith("db"):
            counts[str(db)] = int(stats["keys"] if isinstance(stats, Mapping) else stats)
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0][2:])))


def compare_keyspace(expected: Mapping[str, int], actual: Mapping[str, int],
                     check: str = "DBSIZE") -> list[Mismatch]:
    """DBSIZE differences, one per db that differs."""
    out = []
    for db in sorted(set(expected) | set(actual), key=lambda d: int(d[2:])):
        want, got = int(expected.get(db, 0)), int(actual.get(db, 0))
        if want != got:
            out.append(Mismatch(db, check, str(want), str(got)))
    return out


def aof_manifest(base_name: str, incr_name: str) -> str:
    """A Redis 7 AOF manifest: the RDB-format BASE `base_name`, then the INCR file `incr_name`."""
    return f"file {base_name} seq 1 type b\nfile {incr_name} seq 1 type i\n"


# ---------------------------------------------------------------- connection


def _scrub(text: str, password: Secret | None) -> str:
    if password and password.reveal() in text:
        return text.replace(password.reveal(), "***")
    return text


@contextlib.contextmanager
def translated(where: str, password: Secret | None = None) -> Iterator[None]:
    """Turn redis-py errors into typed errors naming host:port and never the password."""
    try:
        yield
    except redis.AuthenticationError as err:
        raise errors.Unavailable(f"redis {where}: authentication failed: {_scrub(str(err), password)}") from None
    except (redis.ConnectionError, redis.TimeoutError) as err:
        raise errors.Unavailable(f"redis {where}: {_scrub(str(err), password)}") from None
    except redis.ResponseError as err:
        text = _scrub(str(err), password)
        if text.startswith("NOPERM"):
            raise errors.ConfigError(f"redis {where}: the configured user lacks a permission: {text}") from None
        raise errors.Unhealthy(f"redis {where}: {text}") from None


def _client_where(client: redis.Redis) -> tuple[str, Secret | None]:
    kw = client.connection_pool.connection_kwargs
    password = kw.get("password")
    return f"{kw.get('host')}:{kw.get('port')}", Secret(password) if password else None


@contextlib.contextmanager
def _client_errors(client: redis.Redis) -> Iterator[None]:
    where, password = _client_where(client)
    with translated(where, password):
        yield


def connect(target: RedisTarget) -> redis.Redis:
    """A client for `target` that has answered PING; Unavailable otherwise.

    redis-py's own retries (3, with backoff, by default in 6+) are off: callers that
    wait (wait_ready, the BGSAVE polls) have their own deadlines.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    tls = {}
    if target.tls:
        tls = {"ssl": True, "ssl_ca_certs": target.tls_ca, "ssl_certfile": target.tls_cert,
               "ssl_keyfile": target.tls_key}
    client = redis.Redis(
        host=target.host, port=target.port, username=target.username,
        password=target.password.reveal() if target.password else None,
        socket_timeout=min(target.timeout_s, 30.0), socket_connect_timeout=min(target.timeout_s, 10.0),
        decode_responses=True, retry=Retry(NoBackoff(), 0), **tls,
    )
    with translated(target.where, target.password):
        client.ping()
    return client


# ---------------------------------------------------------------- BGSAVE


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
            where, _ = _client_where(client)
            raise errors.Unhealthy(f"redis {where}: timed out waiting for {what}")
        sleep(POLL_S)


def bgsave_and_wait(client: redis.Redis, timeout_s: float, monotonic: Monotonic = time.monotonic,
                    sleep: Sleep = time.sleep) -> BgsaveResult:
    """Run our own BGSAVE and wait until it has finished successfully.

    A save or AOF rewrite already running is waited for, then ours is issued (its
    file would predate our facts). Unhealthy if the save fails or takes too long.
    """
    deadline = monotonic() + timeout_s
    with _client_errors(client):
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
            where, _ = _client_where(client)
            raise errors.Unhealthy(
                f"redis {where}: BGSAVE failed (rdb_last_bgsave_status:{fields['rdb_last_bgsave_status']});"
                " see the Redis log (disk full? permissions on dir?)")
        return BgsaveResult(keyspace, save_mark(fields), at_fork)


@contextlib.contextmanager
def aof_rewrite_paused(client: redis.Redis, timeout_s: float = 300.0, monotonic: Monotonic = time.monotonic,
                       sleep: Sleep = time.sleep) -> Iterator[None]:
    """Inside: automatic AOF rewrites are off and none is running; the old setting comes back after."""
    key = "auto-aof-rewrite-percentage"
    with _client_errors(client):
        old = client.config_get(key)[key]
        client.config_set(key, 0)
    try:
        with _client_errors(client):
            _poll(client, lambda f: int(f.get("aof_rewrite_in_progress", 0)) == 0
                  and int(f.get("aof_rewrite_scheduled", 0)) == 0,
                  monotonic() + timeout_s, "the running AOF rewrite to finish", monotonic, sleep)
        yield
    finally:
        with _client_errors(client):
            client.config_set(key, old)


# ---------------------------------------------------------------- facts


def collect_facts(client: redis.Redis, keyspace: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Version, persistence settings and DBSIZE per db (from `keyspace` if given, else now)."""
    with _client_errors(client):
        server = client.info("server")
        config = client.config_get("*")
        counts = dict(keyspace) if keyspace is not None else keyspace_counts(client.info("keyspace"))
    appendonly = config.get("appendonly") == "yes"
    return {
        "kind": "redis",
        "redis_version": str(server["redis_version"]),
        "appendonly": appendonly,
        "appenddirname": config.get("appenddirname") if appendonly else None,
        "appendfilename": config.get("appendfilename", "appendonly.aof"),
        "dbfilename": config.get("dbfilename", "dump.rdb"),
        "dbsize": counts,
        "total_keys": sum(counts.values()),
    }


def verify_facts(client: redis.Redis, facts: Mapping[str, Any]) -> list[Mismatch]:
    """DBSIZE per db now versus the facts; [] when equal."""
    with _client_errors(client):
        now = keyspace_counts(client.info("keyspace"))
    # Facts read next to, not at, the fork: writes during the backup can explain a difference.
    check = "DBSIZE (facts read next to the fork)" if facts.get("keyspace_at_fork") is False else "DBSIZE"
    return compare_keyspace(facts["dbsize"], now, check)


# ---------------------------------------------------------------- capture


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
        with _client_errors(client):
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


# ---------------------------------------------------------------- restore


def _move_aside(data_dir: str, clock: Clock, owner: tuple[int, int] | None) -> str | None:
    """Move the data dir aside as its sibling `<data_dir>.corrupted.YYYYMMDD_HHMMSS` (placement.move_aside)
    and put an empty one back with the same owner and mode; None if there was nothing to keep.

    A mount point stays where it is and its contents move. Files of the data dir other than
    Redis's own (a nodes.conf, say) are in the aside copy too.
    """
    if not os.path.isdir(data_dir):
        os.makedirs(data_dir, 0o750)
        if owner is not None and os.geteuid() == 0:
            os.chown(data_dir, *owner)
        return None
    if not os.listdir(data_dir):
        return None
    aside = move_aside(data_dir, stamp(clock.now()))
    recreate_dir(data_dir, aside)
    return aside


def _chown_tree(path: str, owner: tuple[int, int] | None) -> None:
    if owner is None:
        return
    uid, gid = owner
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


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
    aside = _move_aside(data_dir, clock, owner)
    dst = os.path.join(data_dir, rdb_name)
    shutil.move(src, dst)
    placed = [dst]
    if facts.get("appendonly"):
        placed.append(os.path.join(data_dir, _aof_from_rdb(dst, data_dir, facts)))
    for path in placed:
        _chown_tree(path, owner)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return aside


def _ready_once(target: RedisTarget) -> bool:
    """True when Redis answers PING and has finished loading its data."""
    client = connect(target)
    try:
        with translated(target.where, target.password):
            return int(client.info("persistence").get("loading", 0)) == 0
    finally:
        client.close()


def wait_ready(target: RedisTarget, timeout_s: float, monotonic: Monotonic = time.monotonic,
               sleep: Sleep = time.sleep) -> None:
    """Wait until Redis answers PING with `loading:0`; Unavailable after `timeout_s`."""
    deadline = monotonic() + timeout_s
    last = "no answer yet"
    while True:
        try:
            if _ready_once(target):
                return
            last = "still loading its data"
        except (errors.Unavailable, errors.Unhealthy) as err:
            last = str(err)
        if monotonic() >= deadline:
            raise errors.Unavailable(f"redis {target.where} not ready after {timeout_s}s: {last}")
        sleep(0.1)
