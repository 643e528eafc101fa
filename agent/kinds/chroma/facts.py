"""Chroma facts taken from the captured bytes themselves, by chromadb's own engine.

In: the directory a capture sends (the online copy, or the persist dir while the service
is paused or stopped), the ChromaTarget and the server's version. Out: the facts (per
collection: name, id, count, dimension, metric, probe queries with their top-k ids), read
by opening a scratch copy of that directory with chromadb's PersistentClient in a child
process (`python -m ragbackup.agent.kinds.chroma.facts`, started ahead and told when its
copy is complete); the restore's check compares them with the restored server. Without a
usable chromadb the facts say why they are missing.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ragbackup import errors

from ragbackup.agent.kinds.chroma.api import ChromaTarget, check_version_compatible

log = logging.getLogger("ragbackup.agent.kinds.chroma.facts")

# Opening a copy loads its HNSW segments; a large store takes a while, a hung engine must not
# hold a paused service forever.
ENGINE_TIMEOUT_S = 900.0
STDERR_TAIL = 2000
# The line that tells the child its copy is complete.
GO = "go"


def engine_version() -> str | None:
    """The installed chromadb package's version, None if it is not installed."""
    try:
        return importlib.metadata.version("chromadb")
    except importlib.metadata.PackageNotFoundError:
        return None


def unusable_engine(server: str, engine: str | None) -> str | None:
    """Why the agent's chromadb cannot take facts of this server's files; None if it can."""
    if engine is None:
        return "the chromadb package is not installed on the agent host"
    try:
        check_version_compatible(server, engine, force=False)
    except errors.UsageError:
        return f"the agent's chromadb {engine} may not read files of Chroma {server}"
    return None


Reader = Callable[[str], dict[str, Any]]


@contextlib.contextmanager
def engine(target: ChromaTarget, version: str, scratch: str) -> Iterator[Reader]:
    """`read(root)`: the facts of the persist dir at `root`, computed on a copy in `scratch`.

    The child starts (and imports chromadb, 2 s) on entry, while the caller makes its copy
    or before it holds the service; `read` then copies `root` and lets the child open the
    copy. The engine writes to what it opens (WAL, replayed log, HNSW files), so it gets a
    copy, never the captured directory. Without a usable chromadb, `read` returns facts that
    say why they hold no collections.
    """
    facts = {"kind": "chroma", "version": version, "tenant": target.tenant, "database": target.database}
    installed = engine_version()
    reason = unusable_engine(version, installed)
    if reason:
        log.warning("chroma %s: facts not recorded: %s", target.persist_dir, reason)
        yield lambda root: {**facts, "unverified": reason}
        return
    scratch = os.path.abspath(scratch)  # the child runs in it
    copy, out = os.path.join(scratch, "persist"), os.path.join(scratch, "facts.json")
    proc = _start(copy, out, target, scratch)

    def read(root: str) -> dict[str, Any]:
        shutil.copytree(root, copy, symlinks=True)
        _finish(proc)
        with open(out, encoding="utf-8") as f:
            return {**facts, "engine": f"chromadb {installed}", "collections": json.load(f)}

    try:
        yield read
    finally:
        if proc.poll() is None:  # read() was not called or failed: end our child
            proc.kill()
            proc.wait()


def facts_of_copy(root: str, target: ChromaTarget, scratch: str, version: str) -> dict[str, Any]:
    """The facts of the persist dir at `root`, computed on a copy of it in `scratch`."""
    with engine(target, version, scratch) as read:
        return read(root)


def _start(copy: str, out: str, target: ChromaTarget, cwd: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", __name__, copy, out, "--tenant", target.tenant, "--database",
            target.database, "--probes", str(target.probes), "--top-k", str(target.top_k)]
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd)


def _finish(proc: subprocess.Popen) -> None:
    """Tell the child its copy is complete; wait for it to write the facts."""
    try:
        _, stderr = proc.communicate(GO + "\n", timeout=ENGINE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise errors.Unhealthy(f"chroma facts: chromadb did not open the captured copy within "
                               f"{ENGINE_TIMEOUT_S:.0f}s") from None
    if proc.returncode != 0:
        raise errors.IntegrityError(f"chroma facts: chromadb could not read the captured copy (exit "
                                    f"{proc.returncode}): {stderr.strip()[-STDERR_TAIL:]}")


# ---------------------------------------------------------------- the child process


def probe_offsets(count: int, probes: int) -> list[int]:
    """Up to `probes` distinct record offsets spread evenly over `count` records."""
    if count <= 0 or probes <= 0:
        return []
    return sorted({i * count // min(probes, count) for i in range(min(probes, count))})


def space_of(metadata: Mapping[str, Any] | None, configuration: Mapping[str, Any] | None) -> str | None:
    """The distance metric: collection metadata `hnsw:space`, else the HNSW configuration."""
    metadata = metadata or {}
    if "hnsw:space" in metadata:
        return str(metadata["hnsw:space"])
    hnsw = (configuration or {}).get("hnsw") or {}
    return hnsw.get("space")


def _collections(client) -> list:
    """Collection objects sorted by name (0.6 lists names, 1.x lists objects)."""
    listed = client.list_collections()
    cols = [client.get_collection(c) if isinstance(c, str) else c for c in listed]
    return sorted(cols, key=lambda c: c.name)


def _probes(col, count: int, probes: int, top_k: int) -> list[dict[str, Any]]:
    """Stored vectors at evenly spread offsets, each with its top-k answer (the restore re-asks)."""
    out = []
    n_results = min(top_k, count)
    for offset in probe_offsets(count, probes):
        got = col.get(limit=1, offset=offset, include=["embeddings"])
        vector = [float(x) for x in got["embeddings"][0]]
        answer = col.query(query_embeddings=[vector], n_results=n_results, include=["distances"])
        out.append({"id": got["ids"][0], "embedding": vector, "n_results": n_results,
                    "top_k": list(answer["ids"][0]), "distances": [float(d) for d in answer["distances"][0]]})
    return out


def _model_field(col, name: str) -> Any:
    model = getattr(col, "_model", None)
    return getattr(model, name, None) if model is not None else None


def collection_facts(col, probes: int, top_k: int) -> dict[str, Any]:
    count = col.count()
    found = _probes(col, count, probes, top_k)
    dimension = len(found[0]["embedding"]) if found else _model_field(col, "dimension")
    metadata: Mapping[str, Any] = col.metadata or {}
    return {"name": col.name, "id": str(col.id), "count": count, "dimension": dimension,
            "space": space_of(metadata, _model_field(col, "configuration_json")),
            "metadata": dict(metadata), "probes": found}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the facts of a Chroma persist dir (a copy: it is written to).")
    p.add_argument("persist_dir")
    p.add_argument("out")
    p.add_argument("--tenant", default="default_tenant")
    p.add_argument("--database", default="default_database")
    p.add_argument("--probes", type=int, default=3)
    p.add_argument("--top-k", type=int, default=5)
    args = p.parse_args(argv)
    import chromadb
    from chromadb.config import Settings

    if sys.stdin.readline().strip() != GO:  # the capture ended before its copy was complete
        return 0
    client = chromadb.PersistentClient(path=args.persist_dir, settings=Settings(anonymized_telemetry=False),
                                       tenant=args.tenant, database=args.database)
    facts = [collection_facts(c, args.probes, args.top_k) for c in _collections(client)]
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(facts, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
