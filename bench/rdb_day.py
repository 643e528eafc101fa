"""What a day's Redis RDB costs stored by record (rdb-records) against plain chunking, and the parse speed.

In: --seed/--mutate-seed/--scale/--pct (the benchmark's Redis dataset and its day, gen_redis.py),
or --rdb OLD NEW (two existing files). Out: JSON on stdout: parse, canonicalise and rebuild
CPU seconds and MB/s, and the bytes a second backup adds (new chunks, raw and zstd-compressed,
plus 32 bytes of tree per chunk) both ways. The files are checked to rebuild byte-identical.

    python -m bench.rdb_day --scale 1 --seed 42 --mutate-seed 7 --pct 1 --work /var/tmp/rdb-day
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import blake3
import zstandard

from ragbackup.repo import chunking, rdb, rdb_layout

ID_BYTES = 32  # a chunk id in the file's tree entry (hex in JSON compresses to about this)


def _timed(fn, *args):
    """(result, CPU seconds of this process): wall time on a shared machine says little."""
    t = time.process_time()
    out = fn(*args)
    return out, time.process_time() - t


def stored_chunks(data: bytes) -> tuple[list[bytes], dict]:
    """The rdb-records chunks of `data`, and the seconds each step took."""
    parsed, t_parse = _timed(rdb.parse, data)
    chunks, t_canon = _timed(lambda: list(rdb_layout.canonicalise(data, parsed)))
    rebuilt, t_rebuild = _timed(lambda: b"".join(rdb_layout.rebuild(chunks)))
    if rebuilt != data:
        raise SystemExit("rebuilt RDB differs from the original")
    mb = len(data) / 1e6
    return chunks, {"records": len(parsed.starts), "mb": round(mb, 1), "parse_cpu_s": round(t_parse, 2),
                    "parse_mb_s": round(mb / t_parse, 1), "canonicalise_cpu_s": round(t_canon, 2),
                    "rebuild_cpu_s": round(t_rebuild, 2), "rebuild_mb_s": round(mb / t_rebuild, 1),
                    "chunks": len(chunks)}


def plain_chunks(data: bytes) -> list[bytes]:
    return [bytes(c) for c in chunking.cut_buffer(chunking.ChunkerParams(), data)]


def added(old: list[bytes], new: list[bytes]) -> dict:
    """Bytes the `new` chunks add to a repository holding the `old` ones."""
    seen = {blake3.blake3(c).digest() for c in old}
    fresh = [c for c in new if blake3.blake3(c).digest() not in seen]
    comp = zstandard.ZstdCompressor(level=3)
    small = zstandard.ZstdCompressor(level=1)
    stored = sum(len((small if len(c) < chunking.SMALL_CHUNK else comp).compress(c)) for c in fresh)
    return {"new_chunks": len(fresh), "new_raw": sum(map(len, fresh)), "new_compressed": stored,
            "tree_ids": ID_BYTES * len(new), "total": stored + ID_BYTES * len(new)}


def compare(old: bytes, new: bytes) -> dict:
    old_rec, _ = stored_chunks(old)
    new_rec, speed = stored_chunks(new)
    rec = added(old_rec, new_rec)
    plain = added(plain_chunks(old), plain_chunks(new))
    return {"rdb_bytes": len(new), "speed": speed, "records": rec, "plain": plain,
            "ratio_records_to_plain": round(rec["total"] / plain["total"], 3)}


def generate(work: Path, seed: int, mutate_seed: int, scale: float, pct: float) -> tuple[Path, Path]:
    from bench.gen_redis import mutate_redis, write_redis
    work.mkdir(parents=True, exist_ok=True)
    day0, day1 = work / f"day0-{seed}-{scale}.rdb", work / f"day1-{seed}-{mutate_seed}-{scale}-{pct}.rdb"
    if not day0.exists():
        write_redis(work, seed, scale)
        shutil.copyfile(work / "redis" / "dump.rdb", day0)
    if not day1.exists():
        shutil.copyfile(day0, work / "redis" / "dump.rdb")
        mutate_redis(work, mutate_seed, pct)  # loads into a new server: a new key order, as a restart
        shutil.copyfile(work / "redis" / "dump.rdb", day1)
    return day0, day1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rdb", nargs=2, type=Path, metavar=("OLD", "NEW"))
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/rdb-day"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--mutate-seed", type=int, default=7)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--pct", type=float, default=1.0)
    a = ap.parse_args(argv)
    old, new = a.rdb or generate(a.work, a.seed, a.mutate_seed, a.scale, a.pct)
    out = compare(old.read_bytes(), new.read_bytes())
    out["files"] = [str(old), str(new)]
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
