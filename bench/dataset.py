"""Benchmark dataset: generate a RAG stack's data deterministically from a seed, or mutate it (a day of use).

In: --out DIR, --seed, --scale (or --mutate PCT on an existing DIR).
Out: DIR/{documents,chroma,redis,config,processing} and a JSON summary (timings, sizes) on stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import gen_chroma, gen_config, gen_files, gen_redis
from bench.tree import tree_digest, tree_stats

COMPONENTS = ("documents", "chroma", "redis", "config", "processing")
BYTE_DETERMINISTIC = ("documents", "config", "processing")


def _timed(timings: dict[str, float], name: str, fn: Callable[[], object]) -> object:
    t0 = time.perf_counter()
    out = fn()
    timings[name] = round(time.perf_counter() - t0, 2)
    return out


def doc_paths(seed: int, scale: float) -> list[str]:
    """Paths of the generated documents (what Chroma metadata points at)."""
    n = max(3, round(gen_files.DOCS_AT_SCALE_1 * scale))
    return [gen_files.doc_spec(seed, i, scale).relpath for i in range(n)]


def component_sizes(root: Path) -> dict[str, dict[str, int]]:
    """Bytes and file count per component."""
    out = {}
    for name in COMPONENTS:
        size, files = tree_stats(root / name)
        out[name] = {"bytes": size, "files": files}
    return out


def generate(out: Path, seed: int, scale: float) -> dict:
    """Write the whole dataset under `out` (which must be empty or missing); return a summary."""
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: generate into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    t: dict[str, float] = {}
    counts = {
        "documents": _timed(t, "documents", lambda: gen_files.write_documents(out, seed, scale)),
        "processing": _timed(t, "processing", lambda: gen_files.write_processing(out, seed, scale)),
        "config": _timed(t, "config", lambda: gen_config.write_config(out, seed)),
        "redis_keys": _timed(t, "redis", lambda: gen_redis.write_redis(out, seed, scale)),
        "chroma_vectors": _timed(t, "chroma", lambda: gen_chroma.write_chroma(
            out, seed, scale, doc_paths(seed, scale))),
    }
    t["total"] = round(sum(t.values()), 2)
    return {"action": "generate", "out": str(out), "seed": seed, "scale": scale, "counts": counts,
            "seconds": t, "sizes": component_sizes(out), "total_bytes": tree_stats(out)[0]}


def mutate(out: Path, seed: int, pct: float) -> dict:
    """Apply a day of use in place: documents, processing jobs, Chroma vectors, Redis keys."""
    t: dict[str, float] = {}
    docs = _timed(t, "documents", lambda: gen_files.mutate_documents(out, seed, pct))
    assert isinstance(docs, dict)
    added = list(docs.pop("added_paths"))
    counts = {
        "documents": docs,
        "processing": _timed(t, "processing", lambda: gen_files.mutate_processing(out, seed, pct, added)),
        "chroma_added": _timed(t, "chroma", lambda: gen_chroma.mutate_chroma(
            out, seed, pct, gen_files.doc_files(out))),
        "redis": _timed(t, "redis", lambda: gen_redis.mutate_redis(out, seed, pct)),
    }
    t["total"] = round(sum(t.values()), 2)
    return {"action": "mutate", "out": str(out), "seed": seed, "pct": pct, "counts": counts, "seconds": t,
            "sizes": component_sizes(out), "total_bytes": tree_stats(out)[0]}


def digests(root: Path) -> dict:
    """Byte digests of the byte-deterministic components, logical digests of Chroma and Redis.

    chroma.sqlite3 and dump.rdb hold UUIDs and timestamps, so only their content is deterministic.
    """
    out: dict = {name: tree_digest(root / name) for name in BYTE_DETERMINISTIC}
    out["chroma"], out["chroma_counts"] = gen_chroma.chroma_digest(root / "chroma")
    out["redis"], out["redis_keys"] = gen_redis.redis_digest(root / "redis" / "dump.rdb")
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dataset", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="dataset directory")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--scale", type=float, default=1.0, help="1.0 is about 2.5 GB")
    p.add_argument("--mutate", type=float, metavar="PCT", help="mutate DIR in place by about PCT %%")
    p.add_argument("--digest", action="store_true", help="print content digests of DIR and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.digest:
        summary = digests(args.out)
    elif args.mutate is not None:
        summary = mutate(args.out, args.seed, args.mutate)
    else:
        summary = generate(args.out, args.seed, args.scale)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
