"""Memory and CPU of rebuilding one RDB stored by record (ragbackup.repo.rdb_layout.rebuild) alone.

In: --rdb PATH (a Redis dump), --spool DIR (where the rebuild spools; on disk, not a tmpfs).
Out: one JSON line: records, file bytes, the rebuild's CPU seconds (a run without tracing) and
its tracemalloc peak (a second, traced run: tracing slows it about threefold), and whether the
rebuilt bytes equal the file. The chunks are made once by rdb_layout.canonicalise and held in
this process's memory before either run starts, so neither peak counts them. Run:
    .venv/bin/python -m bench.rdb_rebuild --rdb /var/tmp/ragbench-scale/dataset-4/redis/dump.rdb --spool /var/tmp
"""
from __future__ import annotations

import argparse
import json
import mmap
import time
import tracemalloc

import blake3

from ragbackup.repo import rdb, rdb_layout


def _chunks(path: str) -> tuple[list[bytes], int, bytes]:
    """The file's stored chunks, its size and its BLAKE3."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return list(rdb_layout.canonicalise(m, rdb.parse(m))), len(m), blake3.blake3(m).digest()


def _rebuild(chunks: list[bytes], spool: str) -> tuple[int, bytes]:
    h, n = blake3.blake3(), 0
    for piece in rdb_layout.rebuild(iter(chunks), spool):
        h.update(piece)
        n += len(piece)
    return n, h.digest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rdb", required=True, help="the Redis dump to store by record and rebuild")
    ap.add_argument("--spool", default="/var/tmp", help="the rebuild's spool directory (default /var/tmp)")
    a = ap.parse_args()
    chunks, size, digest = _chunks(a.rdb)
    records = rdb_layout.Descriptor.decode(chunks[0]).records
    t = time.process_time()
    n, got = _rebuild(chunks, a.spool)
    cpu = time.process_time() - t
    tracemalloc.start()
    _rebuild(chunks, a.spool)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"records": records, "bytes": size, "cpu_s": round(cpu, 2), "peak_traced_mb": round(peak / 1e6, 1),
                      "peak_bytes_per_record": round(peak / max(records, 1), 1),
                      "identical": n == size and got == digest}))
    return 0 if n == size and got == digest else 1


if __name__ == "__main__":
    raise SystemExit(main())
