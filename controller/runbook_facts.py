"""Facts of imported databases, derived from the imported data as a native backup records them.

In: a copy of the imported dump.rdb or chroma.sqlite3 in the import's work dir. Out: facts of
the agent's shapes (redis: DBSIZE per db; chroma: collections with id, count, dimension), so a
restore of an imported snapshot is verified like a native one; FactsUnavailable saying why not.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any

REDIS_SERVER = "redis-server"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the NUL
DEFAULT_SPACE = "l2"  # what Chroma uses when neither metadata nor configuration names a metric
DERIVED = "import"  # facts["derived"]: read from the imported data, not from the live database


class FactsUnavailable(Exception):
    """The facts could not be derived; the message says why (the import goes on without them)."""


@dataclass(frozen=True)
class RedisProbe:
    """How the throwaway redis-server is run."""

    binary: str = REDIS_SERVER
    timeout_s: float = 600.0  # loading a multi-GiB RDB takes minutes
    poll_s: float = 0.05


class FactsCopy:
    """The file facts are derived from, copied aside while the import stores it.

    A failed write (a full staging volume) drops the copy and keeps the reason in `error`:
    the import goes on, only without these facts.
    """

    def __init__(self, path: str):
        self.path, self.error = path, ""
        try:
            self._f: IO[bytes] | None = open(path, "wb")
        except OSError as exc:
            self._f = None
            self.error = f"copying it aside failed: {exc.strerror}"

    def __enter__(self) -> "FactsCopy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        if self._f is not None:
            try:
                self._f.write(data)
            except OSError as exc:
                self._drop(exc)

    def close(self) -> None:
        if self._f is not None:
            try:
                self._f.close()
                self._f = None
            except OSError as exc:
                self._drop(exc)

    def _drop(self, exc: OSError) -> None:
        self.error = f"copying it aside failed: {exc.strerror}"
        f, self._f = self._f, None
        with contextlib.suppress(OSError):
            f.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


# ---------------------------------------------------------------- redis


def redis_facts(rdb_path: str, work_dir: str, probe: RedisProbe = RedisProbe()) -> dict[str, Any]:
    """DBSIZE per db of `rdb_path`, read from a throwaway redis-server that loads it.

    The server loads a hard link of the RDB in a private dir of `work_dir` and listens on a
    unix socket only (`--port 0`: no TCP listener, so nothing else can reach it or race for a
    port), in a 0700 dir of the system's temp dir (a socket path must stay under 108 bytes,
    which a deep state_dir exceeds); `--save ""` and `--appendonly no`, so it writes nothing;
    it is stopped by its PID.
    """
    binary = shutil.which(probe.binary)
    if binary is None:
        raise FactsUnavailable(f"{probe.binary} is not on the controller's PATH")
    home = sock_dir = ""
    try:
        home = tempfile.mkdtemp(prefix="redis-facts-", dir=work_dir)
        sock_dir = tempfile.mkdtemp(prefix="rag-import-redis-")
        os.link(rdb_path, os.path.join(home, "dump.rdb"))
        counts = _run(binary, home, os.path.join(sock_dir, "redis.sock"), probe)
    except OSError as exc:
        raise FactsUnavailable(f"cannot run {binary}: {exc}") from None
    finally:
        for d in (home, sock_dir):
            if d:
                shutil.rmtree(d, ignore_errors=True)
    return {"kind": "redis", "dbfilename": "dump.rdb", "appendonly": False, "dbsize": counts,
            "total_keys": sum(counts.values()), "derived": DERIVED}


def _run(binary: str, home: str, sock: str, probe: RedisProbe) -> dict[str, int]:
    """Start redis-server on the RDB in `home`, read its keyspace, stop it."""
    if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
        raise FactsUnavailable(f"the temp dir's path is too long for a unix socket ({sock})")
    argv = [binary, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir", home,
            "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
            "--logfile", os.path.join(home, "redis.log"), "--daemonize", "no"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return _keyspace(proc, sock, home, probe)
    finally:
        _stop(proc)


def _keyspace(proc: subprocess.Popen, sock: str, home: str, probe: RedisProbe) -> dict[str, int]:
    """The keyspace once the server has loaded the whole RDB.

    INFO is served while an RDB loads, with the keys loaded so far: only an answer that
    says `loading:0` counts.
    """
    deadline = time.monotonic() + probe.timeout_s
    last = "no answer yet"
    while True:
        if proc.poll() is not None:
            raise FactsUnavailable(f"redis-server could not load the RDB: {_log_tail(home)}")
        try:
            reply = _info(sock)
            if "\nloading:0" in reply:
                return keyspace_counts(reply)
            last = "still loading"
        except _NotReady as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise FactsUnavailable(f"redis-server did not load the RDB within {probe.timeout_s:.0f} s ({last})")
        time.sleep(probe.poll_s)


class _NotReady(Exception):
    """No usable answer yet (not listening, -LOADING, a connection error); asked again until the deadline."""


def _info(sock: str) -> str:
    """The INFO text (its default sections hold persistence and keyspace)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(sock)
            s.sendall(b"INFO\r\n")
            return _bulk_reply(s)
    except OSError as exc:
        raise _NotReady(f"its socket: {exc}") from None


def _bulk_reply(s: socket.socket) -> str:
    """One RESP bulk string; -LOADING raises _NotReady, other errors FactsUnavailable."""
    buf = b""
    while b"\r\n" not in buf:
        buf += _recv(s)
    head, rest = buf.split(b"\r\n", 1)
    if head.startswith(b"-"):
        if head.startswith(b"-LOADING"):
            raise _NotReady("-LOADING")
        raise FactsUnavailable(f"redis-server answered {head.decode(errors='replace')}")
    if not head.startswith(b"$"):
        raise FactsUnavailable(f"redis-server answered {head[:80]!r}")
    size = int(head[1:])
    while len(rest) < size:
        rest += _recv(s)
    return rest[:size].decode()


def _recv(s: socket.socket) -> bytes:
    data = s.recv(65536)
    if not data:
        raise ConnectionResetError("the server closed the connection")
    return data


def keyspace_counts(info: str) -> dict[str, int]:
    """`{"db0": keys, ...}` from INFO text (`db0:keys=3,expires=0,...`); db0 always present."""
    counts = {"db0": 0}
    for line in info.splitlines():
        name, _, fields = line.partition(":")
        if name.startswith("db") and name[2:].isdigit():
            values = dict(f.split("=", 1) for f in fields.split(",") if "=" in f)
            counts[name] = int(values.get("keys", 0))
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0][2:])))


def _log_tail(home: str, lines: int = 3) -> str:
    try:
        with open(os.path.join(home, "redis.log"), errors="replace") as f:
            return " | ".join(line.strip() for line in f.readlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, by PID (it saves nothing: `--save ""`)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------- chroma


def chroma_facts(sqlite_path: str, tenant: str = "default_tenant",
                 database: str = "default_database") -> dict[str, Any]:
    """Per collection of `tenant`/`database`: name, id, count, dimension, metric, metadata.

    Read from `sqlite_path` opened read-only and immutable (a copy the import made, so no
    WAL or lock of a live database is involved). No probe queries: they need the HNSW
    index, which only a Chroma server reads; counts, dimensions and ids are still verified.
    """
    try:
        db = sqlite3.connect(f"file:{sqlite_path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise FactsUnavailable(f"cannot open chroma.sqlite3: {exc}") from None
    try:
        cols = _collections(db, tenant, database)
        return {"kind": "chroma", "tenant": tenant, "database": database,
                "collections": [_collection(db, c) for c in cols], "derived": DERIVED}
    except (sqlite3.Error, KeyError, TypeError, ValueError) as exc:
        raise FactsUnavailable(f"chroma.sqlite3 is not a Chroma database this import can read: {exc!r}") from None
    finally:
        db.close()


def _collections(db: sqlite3.Connection, tenant: str, database: str) -> list[dict[str, Any]]:
    """Rows of the collections table as dicts (config_json_str exists from Chroma 0.6 on)."""
    cur = db.execute("SELECT c.* FROM collections c JOIN databases d ON c.database_id = d.id "
                     "WHERE d.name = ? AND d.tenant_id = ? ORDER BY c.name", (database, tenant))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur]


def _collection(db: sqlite3.Connection, col: dict[str, Any]) -> dict[str, Any]:
    count = db.execute(
        "SELECT COUNT(*) FROM embeddings e JOIN segments s ON e.segment_id = s.id "
        "WHERE s.collection = ? AND s.scope = 'METADATA'", (col["id"],)).fetchone()[0]
    metadata = _metadata(db, col["id"])
    return {"name": col["name"], "id": col["id"], "count": count, "dimension": col.get("dimension"),
            "space": metadata.get("hnsw:space") or _configured_space(col.get("config_json_str")),
            "metadata": metadata, "probes": []}


def _configured_space(text: str | None) -> str | None:
    """The HNSW `space` of a collection's configuration JSON; Chroma's default `l2` when unset."""
    try:
        hnsw = (json.loads(text or "{}") or {}).get("hnsw") or {}
    except (ValueError, AttributeError):
        hnsw = {}
    return (hnsw.get("space") if isinstance(hnsw, dict) else None) or DEFAULT_SPACE


def _metadata(db: sqlite3.Connection, cid: str) -> dict[str, Any]:
    rows = db.execute("SELECT key, str_value, int_value, float_value, bool_value FROM collection_metadata "
                      "WHERE collection_id = ?", (cid,)).fetchall()
    out: dict[str, Any] = {}
    for key, s, i, f, b in rows:
        out[key] = next((v for v in (s, i, f) if v is not None), bool(b) if b is not None else None)
    return out
