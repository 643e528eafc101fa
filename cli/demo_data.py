"""The demo's RAG data: documents, processing state, config with a `.env`, Redis keys and Chroma vectors.

In: a data dir, and the ports of the demo's redis-server and `chroma run`. Out: files written, keys
and collections created with the databases' own clients (explicit embeddings: no model download,
telemetry off), a day of changes, the damage of a bad day, and checks of a running database against
a snapshot's facts that use only the databases' own clients. Nothing here talks to rag-backup.
"""
from __future__ import annotations

import filecmp
import json
import os
import random
import sqlite3
import time

import redis

# Redis: (key prefix, type, count) in db 0, plus a cache in db 1.
REDIS_KEYS = (("session", "string", 1500), ("doc:meta", "hash", 600), ("chat:history", "list", 300),
              ("tags", "set", 300), ("rank", "zset", 300))
REDIS_CACHE_KEYS = 200
# Chroma: (name, dimension, records, metric); `documents` is past HNSW's sync threshold (files on disk).
COLLECTIONS = (("documents", 64, 1200, "cosine"), ("faq", 32, 300, "l2"))


# ---------------------------------------------------------------- files


def generate_files(root: str, seed: int = 7) -> None:
    """Documents (text, binary, odd names, a symlink), processing state and config with secrets."""
    rnd = random.Random(seed)
    docs = os.path.join(root, "documents")
    for i in range(240):
        d = os.path.join(docs, f"tenant-{i % 4}", f"batch {i % 7}")
        os.makedirs(d, exist_ok=True)
        if i % 2:
            body = " ".join(rnd.choice(["vector", "embedding", "retrieval", "chunk", "context", "query"])
                            for _ in range(rnd.randint(200, 4000)))
            with open(os.path.join(d, f"doc-{i:04d}.txt"), "w") as f:
                f.write(body)
        else:
            with open(os.path.join(d, f"scan-{i:04d}.pdf"), "wb") as f:
                f.write(rnd.randbytes(rnd.randint(2_000, 200_000)))
    with open(os.path.join(docs, "large-manual.bin"), "wb") as f:
        f.write(rnd.randbytes(6 * 1024 * 1024))
    open(os.path.join(docs, "empty.txt"), "w").close()
    os.makedirs(os.path.join(docs, "empty-dir"))
    with open(os.path.join(docs, "résumé ünïcode.txt"), "w") as f:
        f.write("non-ascii name\n")
    with open(os.path.join(docs, "line\nbreak.txt"), "w") as f:
        f.write("a newline in the name\n")
    os.symlink("tenant-0/batch 0/scan-0000.pdf", os.path.join(docs, "latest.pdf"))
    _generate_state(os.path.join(root, "processing"), rnd)
    _generate_config(os.path.join(root, "config"))


def _generate_state(state: str, rnd: random.Random) -> None:
    os.makedirs(state)
    for i in range(300):
        with open(os.path.join(state, f"job-{i:05d}.json"), "w") as f:
            json.dump({"id": i, "status": rnd.choice(["done", "queued", "failed"]), "chunks": rnd.randint(1, 90)}, f)


def _generate_config(cfg: str) -> None:
    os.makedirs(cfg)
    with open(os.path.join(cfg, ".env"), "w") as f:
        f.write("OPENAI_API_KEY=sk-demo-not-a-real-key\nREDIS_PASSWORD=demo-password\nCHROMA_PORT=8000\n")
    os.chmod(os.path.join(cfg, ".env"), 0o600)
    with open(os.path.join(cfg, "docker-compose.yml"), "w") as f:
        f.write("services:\n  chromadb:\n    image: chromadb/chroma\n  redis:\n    image: redis:7\n")


def change_files(root: str) -> list[str]:
    """A day of use on the files: edit, add and delete documents, finish a job; returns what was done."""
    docs = os.path.join(root, "documents")
    with open(os.path.join(docs, "tenant-1", "batch 1", "doc-0001.txt"), "a") as f:
        f.write("\nappended paragraph\n")
    with open(os.path.join(docs, "tenant-2", "new-upload.txt"), "w") as f:
        f.write("freshly uploaded document\n" * 100)
    os.unlink(os.path.join(docs, "tenant-0", "batch 2", "scan-0016.pdf"))
    with open(os.path.join(root, "processing", "job-00300.json"), "w") as f:
        json.dump({"id": 300, "status": "done", "chunks": 3}, f)
    return ["documents: appended to tenant-1/batch 1/doc-0001.txt, added tenant-2/new-upload.txt, "
            "deleted tenant-0/batch 2/scan-0016.pdf", "processing: added job-00300.json"]


def same_tree(a: str, b: str) -> bool:
    """Byte-identical content, same names, same modes and mtimes for regular files."""
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    for name in cmp.common_files:
        pa, pb = os.path.join(a, name), os.path.join(b, name)
        sa, sb = os.lstat(pa), os.lstat(pb)
        if (sa.st_mode, sa.st_mtime_ns) != (sb.st_mode, sb.st_mtime_ns):
            return False
        if not os.path.islink(pa) and not filecmp.cmp(pa, pb, shallow=False):
            return False
        if os.path.islink(pa) and os.readlink(pa) != os.readlink(pb):
            return False
    return all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


# ---------------------------------------------------------------- Redis


def redis_client(port: int, db: int = 0) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, db=db, decode_responses=True, socket_timeout=10,
                       socket_connect_timeout=2)


def redis_ready(port: int) -> bool:
    with redis_client(port) as c:
        return c.info("persistence")["loading"] == 0


def fill_redis(port: int, seed: int = 11) -> int:
    """Strings, hashes, lists, sets and sorted sets in db 0, a cache in db 1; returns the keys written."""
    rnd = random.Random(seed)
    with redis_client(port) as c:
        pipe = c.pipeline(transaction=False)
        for prefix, kind, n in REDIS_KEYS:
            for i in range(n):
                _write_key(pipe, kind, f"{prefix}:{i}", rnd)
        pipe.execute()
    with redis_client(port, db=1) as c:
        pipe = c.pipeline(transaction=False)
        for i in range(REDIS_CACHE_KEYS):
            pipe.set(f"cache:embedding:{i}", rnd.randbytes(64).hex())
        pipe.execute()
    return sum(n for _, _, n in REDIS_KEYS) + REDIS_CACHE_KEYS


def _write_key(pipe, kind: str, key: str, rnd: random.Random) -> None:
    if kind == "string":
        pipe.set(key, f"user-{rnd.randint(1, 500)}")
    elif kind == "hash":
        pipe.hset(key, mapping={"source": f"{key}.pdf", "pages": rnd.randint(1, 300), "lang": "en"})
    elif kind == "list":
        pipe.rpush(key, *[f"turn {t}" for t in range(rnd.randint(2, 12))])
    elif kind == "set":
        pipe.sadd(key, *rnd.sample(["legal", "finance", "hr", "it", "sales", "ops", "eu", "us"], 3))
    else:
        pipe.zadd(key, {f"chunk-{j}": rnd.random() for j in range(rnd.randint(3, 10))})


def change_redis(port: int) -> str:
    """A day of use in Redis: new sessions, expired ones, an updated hash; returns what was done."""
    with redis_client(port) as c:
        pipe = c.pipeline(transaction=False)
        for i in range(1500, 1600):
            pipe.set(f"session:{i}", "user-new")
        pipe.delete(*[f"session:{i}" for i in range(40)])
        pipe.hset("doc:meta:7", "pages", 301)
        pipe.rpush("chat:history:3", "turn new")
        pipe.execute()
    return "redis: added 100 sessions, deleted 40, updated doc:meta:7 and chat:history:3"


def redis_sample(port: int) -> dict:
    """A few values of each type, to compare after the recovery."""
    with redis_client(port) as c:
        return {"doc:meta:7": c.hgetall("doc:meta:7"), "chat:history:3": c.lrange("chat:history:3", 0, -1),
                "tags:5": sorted(c.smembers("tags:5")), "rank:9": c.zrange("rank:9", 0, -1, withscores=True),
                "session:1599": c.get("session:1599")}


def damage_redis(port: int) -> str:
    """A bad day: a script deletes keys and flushes db 1, and the damage is saved to disk."""
    with redis_client(port) as c:
        c.delete(*[f"doc:meta:{i}" for i in range(600)])
        c.delete(*[f"session:{i}" for i in range(40, 840)])
        with redis_client(port, db=1) as c1:
            c1.flushdb()
        c.save()
        return f"redis: deleted 1400 keys of db 0, flushed db 1, SAVE (DBSIZE now {c.dbsize()})"


def redis_dbsizes(port: int) -> dict[str, int]:
    """{"db0": keys, ...} for every db holding keys."""
    with redis_client(port) as c:
        return {db: int(stats["keys"]) for db, stats in c.info("keyspace").items()}


def redis_matches(port: int, facts: dict) -> list[str]:
    """Differences between the live DBSIZE per db and the facts; [] when equal."""
    want = {db: n for db, n in facts["dbsize"].items() if n}
    try:
        got = redis_dbsizes(port)
    except redis.RedisError as exc:
        return [f"redis on port {port} cannot answer: {exc}"]
    return [] if got == want else [f"DBSIZE per db {got}, snapshot {want}"]


# ---------------------------------------------------------------- Chroma


def chroma_client(port: int, timeout_s: float = 30.0):
    """A chromadb.HttpClient (telemetry off); its constructor talks to the server, so it is retried."""
    import chromadb
    from chromadb.config import Settings

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return chromadb.HttpClient(host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False))
        except Exception:  # noqa: BLE001 - not answering yet; the last failure is raised
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _vectors(rnd: random.Random, n: int, dim: int) -> list[list[float]]:
    return [[rnd.uniform(-1, 1) for _ in range(dim)] for _ in range(n)]


def fill_chroma(port: int) -> int:
    """Collections of seeded explicit embeddings with documents and metadata; returns the records added."""
    client = chroma_client(port)
    for name, dim, n, space in COLLECTIONS:
        rnd = random.Random(name)
        col = client.create_collection(name, embedding_function=None, metadata={"hnsw:space": space})
        for start in range(0, n, 300):
            ids = [f"{name}-{i:05d}" for i in range(start, min(n, start + 300))]
            col.add(ids=ids, embeddings=_vectors(rnd, len(ids), dim), documents=[f"chunk text of {i}" for i in ids],
                    metadatas=[{"source": f"tenant-{j % 4}/doc-{j:04d}.txt"} for j in range(start, start + len(ids))])
    return sum(n for _, _, n, _ in COLLECTIONS)


def change_chroma(port: int) -> str:
    """A day of use in Chroma: new chunks embedded, stale ones removed."""
    col = chroma_client(port).get_collection("faq", embedding_function=None)
    rnd = random.Random("day-2")
    ids = [f"faq-new-{i:03d}" for i in range(40)]
    col.add(ids=ids, embeddings=_vectors(rnd, len(ids), 32), documents=[f"new answer {i}" for i in ids])
    col.delete(ids=[f"faq-{i:05d}" for i in range(10)])
    return "chroma: added 40 vectors to faq, deleted 10"


def damage_chroma(port: int, persist_dir: str) -> str:
    """A bad day: a collection is dropped by mistake, then the SQLite file is overwritten with garbage."""
    chroma_client(port).delete_collection("faq")
    path = os.path.join(persist_dir, "chroma.sqlite3")
    with open(path, "r+b") as f:
        f.write(random.Random(0).randbytes(64 * 1024))
    return "chroma: dropped collection faq, overwrote the first 64 KiB of chroma.sqlite3"


def sqlite_quick_check(path: str) -> str:
    """`PRAGMA quick_check` of a SQLite file opened read-only ("ok" when sound), or the error."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return "; ".join(str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall())
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)


def chroma_matches(port: int, facts: dict) -> list[str]:
    """Differences between the live collections (names, counts, probe top-k ids) and the facts; [] when equal."""
    try:
        return _chroma_differences(chroma_client(port), facts)
    except Exception as exc:  # noqa: BLE001 - a server that cannot answer is a difference, named
        return [f"chroma on port {port} cannot answer: {type(exc).__name__}: {exc}"]


def _chroma_differences(client, facts: dict) -> list[str]:
    problems = []
    want = sorted(c["name"] for c in facts["collections"])
    got = sorted(c.name for c in client.list_collections())
    if got != want:
        problems.append(f"collections {got}, snapshot {want}")
    for fact in facts["collections"]:
        if fact["name"] not in got:
            continue
        col = client.get_collection(fact["name"], embedding_function=None)
        if col.count() != fact["count"]:
            problems.append(f"{fact['name']}: {col.count()} records, snapshot {fact['count']}")
        for probe in fact["probes"]:
            ids = col.query(query_embeddings=[probe["embedding"]], n_results=probe["n_results"], include=[])["ids"][0]
            if ids != probe["top_k"]:
                problems.append(f"{fact['name']}: probe {probe['id']} top-k {ids}, snapshot {probe['top_k']}")
    return problems


def chroma_counts(facts: dict) -> str:
    """`documents=1200, faq=300` from Chroma facts."""
    return ", ".join(f"{c['name']}={c['count']}" for c in facts["collections"])
