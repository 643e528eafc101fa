"""Redis facts and checks: what a capture records, what a restore and a drill compare, when Redis is ready.

In: a connected client or a RedisTarget. Out: the facts (version, persistence settings, DBSIZE
per db), the differences between a running Redis and the facts, readiness (PING and loading:0,
waited for with agent/ready.py), `ragctl health`'s check, and a drill's checks on a throwaway
redis-server loading the restored RDB.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ragbackup import errors
from ragbackup.mismatch import Mismatch
from ragbackup.v1 import agent_pb2

from ragbackup.agent import ready
from ragbackup.agent.component import Component
from ragbackup.agent.drill_procs import DrillSetup, check, free_port, require_binary, serving, wait_serving
from ragbackup.agent.kinds.redis.client import RedisTarget, client_errors, connect, redis, target_of, translated


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


def collect_facts(client: redis.Redis, keyspace: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Version, persistence settings and DBSIZE per db (from `keyspace` if given, else now)."""
    with client_errors(client):
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
    with client_errors(client):
        now = keyspace_counts(client.info("keyspace"))
    # Facts read next to, not at, the fork: writes during the backup can explain a difference.
    check = "DBSIZE (facts read next to the fork)" if facts.get("keyspace_at_fork") is False else "DBSIZE"
    return compare_keyspace(facts["dbsize"], now, check)


def is_ready(target: RedisTarget) -> bool:
    """True when Redis answers PING and has finished loading its data; Unavailable/Unhealthy if not."""
    client = connect(target)
    try:
        with translated(target.where, target.password):
            if int(client.info("persistence").get("loading", 0)) != 0:
                raise errors.Unhealthy(f"redis {target.where}: still loading its data")
            return True
    finally:
        client.close()


def wait_ready(target: RedisTarget, timeout_s: float) -> None:
    """Wait until Redis answers PING with `loading:0`; NotReady (an Unavailable) after `timeout_s`."""
    ready.wait_until(lambda: is_ready(target), timeout_s, f"redis {target.where}")


def health(comp: Component) -> tuple[bool, str]:
    """`ragctl health`: Redis answers PING; how many keys db0 holds."""
    target = target_of(comp)
    client = connect(target)
    try:
        return True, f"PING ok at {target.where}, {client.dbsize()} keys in db0"
    finally:
        client.close()


# ---------------------------------------------------------------- drill


def drill(data: str, scratch: str, facts: dict, setup: DrillSetup) -> list[agent_pb2.CheckResult]:
    """A throwaway redis-server loads the restored RDB; its DBSIZE per db is compared with the facts."""
    rdb = facts.get("dbfilename") or "dump.rdb"
    if not os.path.isfile(os.path.join(data, rdb)):
        return [check("redis-start", False, f"the restored data has no {rdb}")]
    checks: list[agent_pb2.CheckResult] = []
    try:
        binary = require_binary("redis-server")
        port = free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", data, "--dbfilename", rdb,
                "--appendonly", "no", "--save", "", "--daemonize", "no", "--protected-mode", "yes"]
        with serving(argv, "redis-server", scratch, setup) as proc:
            target = RedisTarget(data_dir=data, port=port, rdb_filename=rdb, timeout_s=30)
            wait_serving(lambda: is_ready(target), proc, "redis-server", scratch, setup)
            checks.append(check("redis-start", True, f"redis-server loaded {rdb} on 127.0.0.1:{port}"))
            checks.append(_drill_dbsize(target, facts))
    except errors.Cancelled:
        raise
    except (errors.RagBackupError, OSError) as exc:  # named after the step it stopped
        checks.append(check("redis-dbsize" if checks else "redis-start", False,
                            getattr(exc, "message", None) or str(exc)))
    return checks


def _drill_dbsize(target: RedisTarget, facts: dict) -> agent_pb2.CheckResult:
    if "dbsize" not in facts:
        return check("redis-dbsize", True, "the snapshot has no DBSIZE facts (imported): not compared")
    client = connect(target)
    try:
        problems = verify_facts(client, facts)
    finally:
        client.close()
    if problems:
        return check("redis-dbsize", False, "; ".join(p.text() for p in problems))
    return check("redis-dbsize", True, f"DBSIZE per db {facts['dbsize']} as recorded")
