"""ChromaDB steps around the generic file capture/restore: online copy, place, verify.

In: a ChromaTarget (persist dir + server URL). Out: a staging copy of the persist dir (its
facts are computed from that copy by chroma_facts); on restore, the dir placed and the
running server's answers compared with the facts.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from ragbackup import errors
from ragbackup.lazy import lazy_import
from ragbackup.clock import SYSTEM, Clock, stamp
from ragbackup.mismatch import Mismatch

from ragbackup.agent.placement import move_aside

# HTTP (and with it ssl) is loaded on the first Chroma capture, not by every agent.
urllib_error = lazy_import("urllib.error")
urllib_request = lazy_import("urllib.request")

SQLITE_NAME = "chroma.sqlite3"
# Files SQLite owns next to the database; the online backup reads through them.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
Monotonic = Callable[[], float]
Sleep = Callable[[float], None]


@dataclasses.dataclass(frozen=True)
class ChromaTarget:
    """Where one Chroma keeps its data on this host and where its HTTP API answers."""

    persist_dir: str
    url: str = "http://127.0.0.1:8000"
    tenant: str = "default_tenant"
    database: str = "default_database"
    owner: tuple[int, int] = (1000, 1000)
    probes: int = 3
    top_k: int = 5
    timeout_s: float = 30.0


# ---------------------------------------------------------------- pure decisions


def major_version(version: str) -> int:
    """The major number of `1.5.9`, `v0.6.3`, `1.0.0-rc1`; UsageError if there is none."""
    match = re.match(r"\s*v?(\d+)(?:\.|$)", str(version))
    if not match:
        raise errors.UsageError(f"not a version number: {version!r}")
    return int(match.group(1))


def _series(version: str) -> tuple[int, ...]:
    """Versions that share on-disk formats: the major, and for 0.x also the minor (0.5 vs 0.6)."""
    major = major_version(version)
    if major != 0:
        return (major,)
    minor = re.match(r"\s*v?0\.(\d+)", str(version))
    return (0, int(minor.group(1)) if minor else -1)


def check_version_compatible(snapshot_version: str, running_version: str, force: bool) -> str | None:
    """None if the running Chroma reads the snapshot's files; a warning if not but `force`.

    Otherwise UsageError: a persist dir from another major (or another 0.x minor) can
    crash or silently misread (field reports of segfaults after version mismatches).
    """
    if _series(snapshot_version) == _series(running_version):
        return None
    message = (f"snapshot was taken from Chroma {snapshot_version}, the server runs {running_version}:"
               " a different major version may not read these files")
    if force:
        return message + " (restoring anyway: forced)"
    raise errors.UsageError(message + "; run the same major version or restore with --force")


def probe_offsets(count: int, probes: int) -> list[int]:
    """Up to `probes` distinct record offsets spread evenly over `count` records."""
    if count <= 0 or probes <= 0:
        return []
    return sorted({i * count // min(probes, count) for i in range(min(probes, count))})


def compare_collections(expected: list[Mapping[str, Any]],
                        actual: Mapping[str, Mapping[str, Any]]) -> list[Mismatch]:
    """Missing/unexpected collections and count/dimension/id differences (probes aside)."""
    out = []
    for name in sorted(set(actual) - {c["name"] for c in expected}):
        out.append(Mismatch(name, "collection", "absent", "present"))
    for want in expected:
        got = actual.get(want["name"])
        if got is None:
            out.append(Mismatch(want["name"], "collection", "present", "missing"))
            continue
        for key in ("count", "dimension", "id"):
            if want.get(key) != got.get(key):
                out.append(Mismatch(want["name"], key, str(want.get(key)), str(got.get(key))))
    return out


def compare_probe(collection: str, probe: Mapping[str, Any], ids: list[str]) -> Mismatch | None:
    """A Mismatch if the top-k ids differ (order included) from the recorded ones."""
    if list(probe["top_k"]) == list(ids):
        return None
    return Mismatch(collection, f"probe {probe['id']} top-{probe['n_results']}",
                    ", ".join(probe["top_k"]), ", ".join(ids))


# ---------------------------------------------------------------- SQLite and files


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


# ---------------------------------------------------------------- HTTP


def _http(url: str, body: Any = None, timeout: float = 30.0) -> Any:
    """JSON from GET (no body) or POST `url`; Unavailable/Unhealthy on failure."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib_request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib_request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib_error.HTTPError as err:
        detail = err.read()[:300].decode(errors="replace")
        raise errors.Unhealthy(f"chroma {_origin(url)}: HTTP {err.code} for {_path(url)}: {detail}") from None
    except (urllib_error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise errors.Unavailable(f"chroma {_origin(url)}: {reason}") from None


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else f"{parts.scheme}://{parts.hostname}"


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


class _Api:
    """The few v2 REST calls we need, for one tenant/database."""

    def __init__(self, target: ChromaTarget):
        self.base = target.url.rstrip("/") + "/api/v2"
        quote = urllib.parse.quote
        self.db = f"{self.base}/tenants/{quote(target.tenant)}/databases/{quote(target.database)}"
        self.timeout = target.timeout_s

    def version(self) -> str:
        return str(_http(f"{self.base}/version", timeout=self.timeout))

    def collections(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = _http(f"{self.db}/collections?limit=100&offset={len(out)}", timeout=self.timeout)
            out.extend(page)
            if len(page) < 100:
                return out

    def count(self, cid: str) -> int:
        return int(_http(f"{self.db}/collections/{cid}/count", timeout=self.timeout))

    def record_at(self, cid: str, offset: int) -> tuple[str, list[float]]:
        got = _http(f"{self.db}/collections/{cid}/get",
                    {"limit": 1, "offset": offset, "include": ["embeddings"]}, self.timeout)
        return got["ids"][0], got["embeddings"][0]

    def query(self, cid: str, vector: list[float], n_results: int) -> tuple[list[str], list[float]]:
        got = _http(f"{self.db}/collections/{cid}/query",
                    {"query_embeddings": [vector], "n_results": n_results, "include": ["distances"]},
                    self.timeout)
        return got["ids"][0], got["distances"][0]


# ---------------------------------------------------------------- facts


def space_of(metadata: Mapping[str, Any] | None, configuration: Mapping[str, Any] | None) -> str | None:
    """The distance metric: collection metadata `hnsw:space`, else the HNSW configuration."""
    metadata = metadata or {}
    if "hnsw:space" in metadata:
        return str(metadata["hnsw:space"])
    hnsw = (configuration or {}).get("hnsw") or {}
    return hnsw.get("space")


def server_version(target: ChromaTarget) -> str:
    """The running server's version (recorded with the facts; a restore checks it)."""
    return _Api(target).version()


def _current(api: _Api) -> dict[str, dict[str, Any]]:
    """name -> {id, count, dimension} as the running server reports now."""
    out = {}
    for col in api.collections():
        count = api.count(col["id"])
        dimension = len(api.record_at(col["id"], 0)[1]) if count else col.get("dimension")
        out[col["name"]] = {"id": col["id"], "count": count, "dimension": dimension}
    return out


def verify_facts(target: ChromaTarget, facts: Mapping[str, Any]) -> list[Mismatch]:
    """Differences between the running server and the facts; [] when it answers the same.

    Counts, dimensions and ids per collection, missing or extra collections, and the
    probe queries' top-k ids in order. HNSW search is approximate, but the same index
    files answer the same query identically, so any difference means different data.
    """
    api = _Api(target)
    now = _current(api)
    problems = compare_collections(facts["collections"], now)
    for col in facts["collections"]:
        if col["name"] not in now or now[col["name"]]["count"] == 0:
            continue
        for probe in col["probes"]:
            ids, _ = api.query(now[col["name"]]["id"], probe["embedding"], probe["n_results"])
            problem = compare_probe(col["name"], probe, ids)
            if problem:
                problems.append(problem)
    return problems


def wait_heartbeat(url: str, timeout_s: float, monotonic: Monotonic = time.monotonic,
                   sleep: Sleep = time.sleep) -> None:
    """Poll `/api/v2/heartbeat` until it answers; Unavailable after `timeout_s`."""
    deadline = monotonic() + timeout_s
    while True:
        try:
            _http(url.rstrip("/") + "/api/v2/heartbeat", timeout=min(5.0, timeout_s))
            return
        except (errors.Unavailable, errors.Unhealthy) as err:
            if monotonic() >= deadline:
                raise errors.Unavailable(f"no heartbeat after {timeout_s}s: {err}") from None
        sleep(0.1)


# ---------------------------------------------------------------- restore


def _move_aside(persist_dir: str, clock: Clock) -> str | None:
    """Rename the persist dir aside (placement.move_aside: a mount point's contents move instead)."""
    return move_aside(persist_dir, stamp(clock.now()))


def _move_into_place(restored_dir: str, persist_dir: str) -> None:
    if not os.path.exists(persist_dir):
        shutil.move(restored_dir, persist_dir)
        return
    for name in os.listdir(restored_dir):  # persist_dir stayed (mount point): fill it
        shutil.move(os.path.join(restored_dir, name), os.path.join(persist_dir, name))


def _chown_tree(path: str, owner: tuple[int, int] | None) -> None:
    if owner is None:
        return
    uid, gid = owner
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def place_restored_data(restored_dir: str, persist_dir: str, owner: tuple[int, int] | None = (1000, 1000),
                        clock: Clock = SYSTEM) -> str | None:
    """With Chroma stopped: move the persist dir aside, move the restored tree in, chown -R.

    The old dir becomes `<persist_dir>.corrupted.YYYYMMDD_HHMMSS` (never deleted; None
    if there was none). `restored_dir` is consumed.
    """
    if not os.path.isfile(os.path.join(restored_dir, SQLITE_NAME)):
        raise errors.UsageError(f"restored data has no {SQLITE_NAME} in {restored_dir}")
    aside = _move_aside(persist_dir, clock)
    _move_into_place(restored_dir, persist_dir)
    _chown_tree(persist_dir, owner)
    return aside
