"""The Chroma part of the dataset: a real persist directory (PersistentClient), 3 collections, dim 384.

In: a seed and scale (or an existing chroma/ and a percentage). Out: chroma/ written by chromadb itself.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.gen_text import model

DIM = 384
VECTORS_AT_SCALE_1 = 150_000
COLLECTIONS = (("documents", 0.60), ("faq", 0.25), ("support_tickets", 0.15))
BATCH = 5_000
CLUSTERS = 64
MUTATION_STREAM = 1 << 40


@contextlib.contextmanager
def chroma_client(path: Path) -> Iterator[object]:
    """A PersistentClient with telemetry off; its cached system is released on exit (files closed)."""
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    try:
        yield client
    finally:
        SharedSystemClient.clear_system_cache()


def embeddings(rng: np.random.Generator, centers: np.ndarray, n: int) -> np.ndarray:
    """Unit vectors scattered around topic centres (as sentence embeddings cluster by topic)."""
    which = rng.integers(0, len(centers), n)
    v = centers[which] + 0.6 * rng.standard_normal((n, DIM), dtype=np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def records(seed: int, coll: int, stream: int, ids: list[str], doc_paths: list[str]) -> dict:
    """ids, embeddings, documents (text chunks) and metadata for one add() call; `stream` names the batch."""
    rng = np.random.default_rng([seed, 6, coll, stream])
    centers = np.random.default_rng([seed, 6, coll]).standard_normal((CLUSTERS, DIM), dtype=np.float32)
    lengths = rng.integers(200, 1000, len(ids))
    text = model().text(rng, int(lengths.sum())).decode("ascii")
    ends = np.cumsum(lengths)
    docs = [text[e - n: e] for e, n in zip(ends.tolist(), lengths.tolist())]
    src = rng.integers(0, len(doc_paths), len(ids))
    metas = [{"source": doc_paths[int(s)], "chunk": int(c), "page": int(p), "lang": "en",
              "ingested_at": int(t)}
             for s, c, p, t in zip(src, rng.integers(0, 60, len(ids)), rng.integers(1, 400, len(ids)),
                                   rng.integers(1_600_000_000, 1_735_000_000, len(ids)))]
    vectors = embeddings(rng, centers, len(ids))
    return {"ids": ids, "embeddings": vectors, "documents": docs, "metadatas": metas}


def _add_all(collection: object, seed: int, coll: int, ids: list[str], doc_paths: list[str],
             stream0: int = 0) -> None:
    for s in range(0, len(ids), BATCH):
        batch = records(seed, coll, stream0 + s, ids[s: s + BATCH], doc_paths)
        collection.add(**batch)  # type: ignore[attr-defined]


def write_chroma(root: Path, seed: int, scale: float, doc_paths: list[str]) -> dict[str, int]:
    """Create chroma/ with 3 collections holding ~150,000*scale vectors; return counts per collection."""
    total = max(90, round(VECTORS_AT_SCALE_1 * scale))
    counts: dict[str, int] = {}
    with chroma_client(root / "chroma") as client:
        for coll, (name, share) in enumerate(COLLECTIONS):
            col = client.create_collection(  # type: ignore[attr-defined]
                name, embedding_function=None, metadata={"hnsw:space": "cosine", "team": name})
            ids = [f"{name}-{i:07d}" for i in range(max(30, round(total * share)))]
            _add_all(col, seed, coll, ids, doc_paths)
            counts[name] = col.count()
    return counts


def mutate_chroma(root: Path, seed: int, pct: float, doc_paths: list[str]) -> dict[str, int]:
    """Add ~pct % new vectors to every collection through Chroma; return vectors added per collection."""
    added: dict[str, int] = {}
    with chroma_client(root / "chroma") as client:
        for coll, (name, _) in enumerate(COLLECTIONS):
            col = client.get_collection(name, embedding_function=None)  # type: ignore[attr-defined]
            n = max(1, round(col.count() * pct / 100))
            ids = [f"{name}-m{seed}-{j:07d}" for j in range(n)]
            _add_all(col, seed, coll, ids, doc_paths, MUTATION_STREAM)
            added[name] = n
    return added


def chroma_digest(path: Path) -> tuple[str, dict[str, int]]:
    """Digest of the logical content (ids, embeddings, documents, metadata) and counts per collection."""
    h = hashlib.sha256()
    counts: dict[str, int] = {}
    with chroma_client(path) as client:
        for name, _ in COLLECTIONS:
            col = client.get_collection(name, embedding_function=None)  # type: ignore[attr-defined]
            got = col.get(include=["embeddings", "documents", "metadatas"])
            order = sorted(range(len(got["ids"])), key=lambda k: got["ids"][k])
            for k in order:
                h.update(got["ids"][k].encode() + np.asarray(got["embeddings"][k], np.float32).tobytes())
                meta = json.dumps(got["metadatas"][k], sort_keys=True)
                h.update(got["documents"][k].encode() + meta.encode())
            counts[name] = len(order)
    return h.hexdigest(), counts
