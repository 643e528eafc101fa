"""The agent's side of restoring a Redis dump.rdb stored by record, isolated: CPU, wall and peak RSS.

In: a dump.rdb (--rdb, or the benchmark's scale-1 Redis dataset made by a real redis-server,
gen_redis.py). `prepare` stores it as the agent's capture would (rdb-records chunks, zstd,
keyed BLAKE3 ids) and frames the chunks as the controller sends them (2 MiB ChunkBatch
messages) into a file. Out: JSON lines, one per run, from a child process that reads those
messages one at a time, parses them with the gRPC deserializer, decodes (decompress, id
check) and rebuilds the file through `TreeWriter`, as the agent's Restore does; the result
is checked byte-identical. No controller, no gRPC transport: those are not timed here.

    python -m bench.rdb_restore --work /var/tmp/rdbrestore --runs 3
    python -m bench.rdb_restore --work /var/tmp/rdbrestore --runs 1 --profile out.html
    python -m bench.rdb_restore --work /var/tmp/rdbrestore --stages
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from ragbackup import wire
from ragbackup.repo import chunking, rdb, rdb_layout
from ragbackup.repo.ids import chunk_id
from ragbackup.v1 import agent_pb2, common_pb2

ID_KEY = bytes(range(32))
BATCH_BYTES = 2 * 1024 * 1024  # controller/restore.py CHUNK_BATCH_BYTES
CHUNKS_FIELD = agent_pb2.RestoreCommand.DESCRIPTOR.fields_by_name["chunks"].number
_LEN = struct.Struct("<Q")


def make_rdb(work: Path, seed: int, scale: float) -> Path:
    """The benchmark's Redis dataset saved by a real redis-server, once."""
    path = work / f"dump-{seed}-{scale}.rdb"
    if not path.exists():
        from bench.gen_redis import write_redis
        write_redis(work, seed, scale)
        shutil.move(work / "redis" / "dump.rdb", path)
    return path


def _batches(chunks: Iterator[bytes]) -> Iterator[tuple[list[bytes], bytes]]:
    """(ids, wire message) of the stored chunks in controller-sized batches."""
    comp = chunking.Compressor(3)
    ids: list[bytes] = []
    batch: list[wire.WireChunk] = []
    size = 0
    for data in chunks:
        payload, compressed = comp.compress(data)
        cid = chunk_id(ID_KEY, data)
        ids.append(cid)
        batch.append((cid, payload, compressed, len(data)))
        size += len(payload)
        if size >= BATCH_BYTES:
            yield ids, wire.encode_chunk_batch(CHUNKS_FIELD, batch)
            ids, batch, size = [], [], 0
    if batch:
        yield ids, wire.encode_chunk_batch(CHUNKS_FIELD, batch)


def prepare(rdb_path: Path, work: Path) -> Path:
    """Write `work`/messages.bin (the entry, then length-prefixed chunk messages); returns its path."""
    out = work / f"messages-{rdb_path.stem}.bin"
    if out.exists():
        return out
    data = rdb_path.read_bytes()
    parsed = rdb.parse(data)
    ids: list[bytes] = []
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(_LEN.pack(0))  # the entry goes here once all ids are known: written last
        for part, msg in _batches(rdb_layout.canonicalise(data, parsed)):
            ids += part
            f.write(_LEN.pack(len(msg)) + msg)
        entry = common_pb2.Entry(path=b"dump.rdb", type=common_pb2.ENTRY_TYPE_FILE, mode=0o600, size=len(data),
                                 chunks=ids, layout=rdb_layout.LAYOUT).SerializeToString()
        f.write(entry)
        f.seek(0)
        f.write(_LEN.pack(len(entry)))
    os.replace(tmp, out)
    return out


def _messages(path: Path) -> tuple[common_pb2.Entry, Iterator[bytes]]:
    f = open(path, "rb")
    n = _LEN.unpack(f.read(8))[0]
    f.seek(-n, os.SEEK_END)
    entry = common_pb2.Entry.FromString(f.read())
    f.seek(8)
    end = os.path.getsize(path) - n

    def gen() -> Iterator[bytes]:
        while f.tell() < end:
            yield f.read(_LEN.unpack(f.read(8))[0])
        f.close()
    return entry, gen()


def _vm(field: str) -> float:
    """A /proc/self/status field (VmHWM, VmRSS) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def restore_once(messages: Path, out_dir: Path, workers: int) -> dict:
    """Restore the file from `messages` into `out_dir` as the agent's Restore does; timings and peak RSS."""
    from ragbackup.agent.restore import ChunkDecoder, TreeWriter
    from ragbackup.agent.servicer import RestoreStream
    entry, raw = _messages(messages)
    deserialize = wire.chunk_batch_deserializer(agent_pb2.RestoreCommand)
    cmds = (deserialize(m) for m in raw)
    start_rss = _vm("VmRSS")
    t0, c0 = time.monotonic(), time.process_time()
    stream = RestoreStream(_commands(entry, cmds))
    writer = TreeWriter(str(out_dir), ID_KEY)
    decoder = ChunkDecoder(stream.try_batch, ID_KEY, workers)
    try:
        for e, ids in stream.entries():
            writer.write(e, decoder, ids)
        writer.finish()
    finally:
        decoder.close()
    return {"wall_s": round(time.monotonic() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
            "peak_rss_mb": round(_vm("VmHWM"), 1), "rss_at_start_mb": round(start_rss, 1)}


def _commands(entry: common_pb2.Entry, chunks: Iterator) -> Iterator:
    """The Restore stream after its start: the entry, its chunk messages, the finish."""
    yield agent_pb2.RestoreCommand(entries=common_pb2.EntryBatch(entries=[entry]))
    yield from chunks
    yield agent_pb2.RestoreCommand(finish=agent_pb2.RestoreFinish())


def child(messages: Path, rdb_path: Path, workers: int, profile: str | None) -> None:
    """One run in this process: restore, check byte-identical, print one JSON line."""
    from ragbackup.memory import tune_malloc
    tune_malloc()  # as the agent's main does: one malloc arena
    with tempfile.TemporaryDirectory(prefix="rdb-restore-", dir=messages.parent) as tmp:
        out = Path(tmp) / "out"
        if profile:
            from pyinstrument import Profiler
            with Profiler(interval=0.002) as prof:
                res = restore_once(messages, out, workers)
            Path(profile).write_text(prof.output_html())
            print(prof.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)
        else:
            res = restore_once(messages, out, workers)
        res["identical"] = _same(out / "dump.rdb", rdb_path)
    print(json.dumps(res), flush=True)


def _same(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


def stages(messages: Path) -> dict:
    """CPU seconds of each stage run alone, one thread, from messages held in memory: parsing
    the received messages, decoding the chunks (decompress, id check), rebuilding the file."""
    from ragbackup.agent.restore import decode_batch
    _, raw = _messages(messages)
    msgs = list(raw)
    deserialize = wire.chunk_batch_deserializer(agent_pb2.RestoreCommand)
    t = time.process_time()
    batches = [deserialize(m).chunks.chunks for m in msgs]
    t_parse, t = time.process_time() - t, time.process_time()
    data = [d for b in batches for d in decode_batch(ID_KEY, b)]
    t_decode, t = time.process_time() - t, time.process_time()
    size = sum(len(piece) for piece in rdb_layout.rebuild(data))
    t_rebuild = time.process_time() - t
    return {"chunks": len(data), "bytes": size, "parse_messages_cpu_s": round(t_parse, 2),
            "decode_cpu_s": round(t_decode, 2), "rebuild_cpu_s": round(t_rebuild, 2)}


def summary(runs: list[dict]) -> dict:
    """Median and [min, max] of each measure over the runs."""
    out: dict = {"runs": len(runs), "identical": all(r["identical"] for r in runs)}
    for k in ("wall_s", "cpu_s", "peak_rss_mb", "rss_at_start_mb"):
        vals = [r[k] for r in runs]
        out[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/rdbrestore"))
    ap.add_argument("--rdb", type=Path, help="an existing dump.rdb (default: generate the scale's dataset)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="decode threads (the agent's default on 2 cores)")
    ap.add_argument("--profile", help="write a pyinstrument HTML profile of one run here")
    ap.add_argument("--stages", action="store_true", help="time each stage alone, in this process")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    rdb_path = a.rdb or make_rdb(a.work, a.seed, a.scale)
    messages = prepare(rdb_path, a.work)
    if a.stages:
        print(json.dumps(stages(messages)))
        return 0
    if a.child:
        child(messages, rdb_path, a.workers, a.profile)
        return 0
    runs = []
    for _ in range(a.runs):
        cmd = [sys.executable, "-m", "bench.rdb_restore", "--child", "--work", str(a.work), "--rdb", str(rdb_path),
               "--workers", str(a.workers)] + (["--profile", a.profile] if a.profile else [])
        line = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
        runs.append(json.loads(line))
        print(line, file=sys.stderr)
    json.dump({"rdb": str(rdb_path), "rdb_bytes": rdb_path.stat().st_size, "summary": summary(runs), "each": runs},
              sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
