"""A restore drill of one component on this agent: restore into scratch, start it, check it, remove it.

In: the Drill stream's RestoreStart (component, facts, keys) and its entries and chunks.
Out: a DrillResult with one CheckResult per check. The tree is written into a fresh scratch
directory in the staging dir (every file's content is checked against its chunk ids while it
is written); redis data is loaded by a throwaway redis-server and its DBSIZE per db compared
with the facts; chroma data gets `PRAGMA quick_check`, then a throwaway `chroma run` whose
collections, counts and probe queries' top-k ids are compared with the facts. Servers listen
on free 127.0.0.1 ports, are recorded by PID (drill_procs) and stopped; the scratch directory
is removed, whatever happens. A failed check is a result, not an error; a cancelled call
(the controller went away) stops at the next step and cleans up the same way.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

from ragbackup import errors
from ragbackup.config import AgentConfig
from ragbackup.repo.dictionary import Dictionaries
from ragbackup.v1 import agent_pb2

from ragbackup.agent import drill_procs
from ragbackup.agent.capture import chroma, redis
from ragbackup.agent.capture.sources import staging
from ragbackup.agent.restore import ChunkDecoder, TreeWriter

log = logging.getLogger("ragbackup.agent.drill")

START_TIMEOUT_S = 300.0  # a server that has not answered by then fails its check


@dataclass(frozen=True)
class DrillSetup:
    """What a drill uses of the agent: config (staging dir), decode workers, and the call's state."""

    cfg: AgentConfig
    workers: int
    pool: ThreadPoolExecutor
    alive: Callable[[], bool]  # False once the controller ended the call
    deadline: float  # time.monotonic() by which a throwaway server must answer


def _check(name: str, ok: bool, detail: str) -> agent_pb2.CheckResult:
    return agent_pb2.CheckResult(name=name, ok=ok, detail=detail)


def _text(problem) -> str:
    """A verification difference as one line (a Mismatch row or a plain text)."""
    return problem.text() if hasattr(problem, "text") else str(problem)


def _is_probe(problem) -> bool:
    check = getattr(problem, "check", None)
    return check.startswith("probe") if check is not None else ": probe " in str(problem)


def find_binary(name: str) -> str | None:
    """`name` on PATH, else beside this Python (a virtualenv's `chroma`)."""
    return shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))


def run(start: agent_pb2.RestoreStart, stream, setup: DrillSetup) -> agent_pb2.DrillResult:
    """Drill one component; `stream` yields its entries (`entries()`) and chunk batches (`try_batch()`)."""
    began = time.monotonic()
    spec = start.component
    with staging(setup.cfg, f"drill-{spec.name}") as scratch:
        data = os.path.join(scratch, "data")
        log.info("drill %s (%s) of %s in %s", spec.name, spec.kind, start.snapshot_id, scratch)
        try:
            counts = _write_tree(start, stream, data, setup)
        except (errors.IntegrityError, errors.UnsafePath) as exc:
            return agent_pb2.DrillResult(checks=[_check("restore", False, exc.message)],
                                         seconds=time.monotonic() - began)
        checks = [_check("restore", True, f"{counts.files} files, {counts.bytes_written} bytes written; every "
                                          "file's content matched its chunk ids")]
        facts = json.loads(start.facts_json or "{}")
        checks += KIND_CHECKS.get(spec.kind, _no_more)(data, scratch, facts, setup)
    result = agent_pb2.DrillResult(files=counts.files, bytes_written=counts.bytes_written, checks=checks,
                                   seconds=time.monotonic() - began)
    log.info("drill %s done in %.1fs: %s", spec.name, result.seconds,
             ", ".join(f"{c.name} {'ok' if c.ok else 'FAILED'}" for c in checks))
    return result


def _write_tree(start: agent_pb2.RestoreStart, stream, root: str, setup: DrillSetup):
    writer = TreeWriter(root, start.id_key)
    decoder = ChunkDecoder(stream.try_batch, start.id_key, setup.workers, dicts=Dictionaries(start.dictionaries),
                           pool=setup.pool)
    try:
        for entry in stream.entries():
            if not setup.alive():
                raise errors.Cancelled("the controller ended the drill")
            writer.write(entry, decoder)
        return writer.finish()
    except BaseException:
        writer.close()
        raise
    finally:
        decoder.close()


def _no_more(data: str, scratch: str, facts: dict, setup: DrillSetup) -> list[agent_pb2.CheckResult]:
    return []  # files: the restore check (content against chunk ids) is the whole check


# ---------------------------------------------------------------- throwaway servers


@contextlib.contextmanager
def _server(argv: list[str], name: str, scratch: str, setup: DrillSetup,
            env: dict | None = None) -> Iterator:
    registry = drill_procs.registry_dir(setup.cfg.staging_dir)
    proc = drill_procs.start(argv, registry, os.path.join(scratch, f"{name}.log"), scratch, env)
    try:
        yield proc
    finally:
        drill_procs.stop(proc, registry)


def _log_tail(scratch: str, name: str, limit: int = 600) -> str:
    try:
        with open(os.path.join(scratch, f"{name}.log"), "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return " ".join(text.split())[-limit:]


def _wait_ready(probe: Callable[[], None], proc, name: str, scratch: str, setup: DrillSetup) -> None:
    """Until `probe()` passes; Unhealthy if the server exits, Unavailable past the deadline."""
    while True:
        if proc.poll() is not None:
            raise errors.Unhealthy(f"{name} exited with status {proc.returncode} on the restored data: "
                                   f"{_log_tail(scratch, name)}")
        if not setup.alive():
            raise errors.Cancelled("the controller ended the drill")
        try:
            probe()
            return
        except (errors.Unavailable, errors.Unhealthy) as exc:
            if time.monotonic() >= setup.deadline:
                raise errors.Unavailable(f"{name} did not answer on the restored data in time: {exc}") from None


def _started(name: str, binary: str | None) -> str:
    if binary is None:
        raise errors.ConfigError(f"{name} is not installed on this agent (not on PATH): the drill cannot start "
                                 "the restored data")
    return binary


# ---------------------------------------------------------------- redis


def _redis(data: str, scratch: str, facts: dict, setup: DrillSetup) -> list[agent_pb2.CheckResult]:
    rdb = facts.get("dbfilename") or "dump.rdb"
    if not os.path.isfile(os.path.join(data, rdb)):
        return [_check("redis-start", False, f"the restored data has no {rdb}")]
    checks: list[agent_pb2.CheckResult] = []
    try:
        binary = _started("redis-server", find_binary("redis-server"))
        port = drill_procs.free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", data, "--dbfilename", rdb,
                "--appendonly", "no", "--save", "", "--daemonize", "no", "--protected-mode", "yes"]
        with _server(argv, "redis-server", scratch, setup) as proc:
            target = redis.RedisTarget(data_dir=data, port=port, rdb_filename=rdb, timeout_s=30)
            _wait_ready(lambda: redis.wait_ready(target, 1.0), proc, "redis-server", scratch, setup)
            checks.append(_check("redis-start", True, f"redis-server loaded {rdb} on 127.0.0.1:{port}"))
            checks.append(_redis_dbsize(target, facts))
    except errors.Cancelled:
        raise
    except (errors.RagBackupError, OSError) as exc:  # named after the step it stopped
        checks.append(_check("redis-dbsize" if checks else "redis-start", False,
                             getattr(exc, "message", None) or str(exc)))
    return checks


def _redis_dbsize(target: redis.RedisTarget, facts: dict) -> agent_pb2.CheckResult:
    if "dbsize" not in facts:
        return _check("redis-dbsize", True, "the snapshot has no DBSIZE facts (imported): not compared")
    client = redis.connect(target)
    try:
        problems = redis.verify_facts(client, facts)
    finally:
        client.close()
    if problems:
        return _check("redis-dbsize", False, "; ".join(map(_text, problems)))
    return _check("redis-dbsize", True, f"DBSIZE per db {facts['dbsize']} as recorded")


# ---------------------------------------------------------------- chroma


def _chroma(data: str, scratch: str, facts: dict, setup: DrillSetup) -> list[agent_pb2.CheckResult]:
    sqlite = os.path.join(data, chroma.SQLITE_NAME)
    if not os.path.isfile(sqlite):
        return [_check("chroma-quick-check", False, f"the restored data has no {chroma.SQLITE_NAME}")]
    verdict = chroma.quick_check(sqlite)
    checks = [_check("chroma-quick-check", verdict == "ok", f"PRAGMA quick_check: {verdict}")]
    try:
        binary = _started("chroma", find_binary("chroma"))
        port = drill_procs.free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [binary, "run", "--path", data, "--host", "127.0.0.1", "--port", str(port)]
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
        with _server(argv, "chroma", scratch, setup, env) as proc:
            _wait_ready(lambda: chroma.wait_heartbeat(url, 1.0), proc, "chroma", scratch, setup)
            checks.append(_check("chroma-start", True, f"chroma answered on {url}"))
            checks += _chroma_facts(url, data, facts)
    except errors.Cancelled:
        raise
    except (errors.RagBackupError, OSError) as exc:  # named after the step it stopped
        started = any(c.name == "chroma-start" for c in checks)
        checks.append(_check("chroma-counts" if started else "chroma-start", False,
                             getattr(exc, "message", None) or str(exc)))
    return checks


def _chroma_facts(url: str, data: str, facts: dict) -> list[agent_pb2.CheckResult]:
    if "collections" not in facts:
        return [_check("chroma-counts", True, "the snapshot has no collection facts (imported): not compared")]
    target = chroma.ChromaTarget(persist_dir=data, url=url, tenant=facts.get("tenant", "default_tenant"),
                                 database=facts.get("database", "default_database"))
    problems = chroma.verify_facts(target, facts)
    probe_problems = [_text(p) for p in problems if _is_probe(p)]
    count_problems = [_text(p) for p in problems if not _is_probe(p)]
    cols = facts["collections"]
    n_probes = sum(len(c.get("probes", ())) for c in cols)
    counts = ", ".join(f"{c['name']}={c['count']}" for c in cols)
    return [_check("chroma-counts", not count_problems, "; ".join(count_problems) or
                   f"{len(cols)} collections with the recorded counts ({counts})"),
            _check("chroma-probes", not probe_problems, "; ".join(probe_problems) or
                   f"{n_probes} probe queries returned the recorded top-k ids")]


KIND_CHECKS: dict[str, Callable[[str, str, dict, DrillSetup], list[agent_pb2.CheckResult]]] = {
    "redis": _redis, "chroma": _chroma}
