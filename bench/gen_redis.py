"""The Redis part of the dataset: a real dump.rdb with ~1M keys of mixed types, and its mutation.

In: a seed and scale (or a dump.rdb and a percentage). Out: redis/dump.rdb written by a real SAVE.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import redis

from bench.gen_text import model
from bench.redis_proc import RedisServer, redis_server

KEYS_AT_SCALE_1 = 1_000_000
TYPE_P = (0.55, 0.20, 0.10, 0.10, 0.05)  # string, hash, list, set, zset
BATCH = 20_000
MSET_GROUP = 500
FAR_FUTURE = 4_102_444_800  # 2100-01-01: TTLs that never fire during a benchmark


def resp(*args: bytes) -> bytes:
    """One command in the Redis protocol (RESP2)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%b\r\n" % (len(a), a))
    return b"".join(out)


class ValueSource:
    """Slices of one large seeded text buffer: values that look like cached LLM text."""

    def __init__(self, seed: int, size: int) -> None:
        self.buf = model().text(np.random.default_rng([seed, 4, 0]), size)

    def take(self, rng: np.random.Generator, lo: int, hi: int) -> bytes:
        n = int(rng.integers(lo, hi))
        off = int(rng.integers(0, len(self.buf) - n))
        return self.buf[off: off + n]


def _string_cmds(ids: list[int], rng: np.random.Generator, vals: ValueSource) -> list[bytes]:
    out: list[bytes] = []
    for g in range(0, len(ids), MSET_GROUP):
        args: list[bytes] = [b"MSET"]
        expiring: list[bytes] = []
        for i in ids[g: g + MSET_GROUP]:
            key = b"cache:llm:%07d" % i if i % 3 else b"session:tok:%07d" % i
            args += [key, vals.take(rng, 60, 700) if i % 3 else rng.bytes(32).hex().encode()]
            if rng.random() < 0.3:
                expiring.append(key)
        out.append(resp(*args))
        out += [resp(b"EXPIREAT", k, b"%d" % (FAR_FUTURE + j)) for j, k in enumerate(expiring)]
    return out


def _hash_cmd(i: int, rng: np.random.Generator, vals: ValueSource) -> bytes:
    ip = b"10.%d.%d.%d" % tuple(rng.integers(0, 255, 3))
    fields = [b"user_id", b"%d" % rng.integers(1, 10**7), b"created", b"%d" % rng.integers(1.6e9, 1.73e9),
              b"last_seen", b"%d" % rng.integers(1.6e9, 1.73e9), b"ip", ip,
              b"user_agent", vals.take(rng, 40, 120), b"conversation", rng.bytes(16).hex().encode()]
    return resp(b"HSET", b"session:%07d" % i, *fields)


def _list_cmd(i: int, rng: np.random.Generator, vals: ValueSource) -> bytes:
    items = [vals.take(rng, 40, 240) for _ in range(int(rng.integers(2, 9)))]
    return resp(b"RPUSH", b"chat:%07d:history" % i, *items)


def _set_cmd(i: int, rng: np.random.Generator) -> bytes:
    members = [b"doc-%06d" % m for m in rng.integers(0, 15_000, int(rng.integers(2, 20)))]
    return resp(b"SADD", b"user:%07d:docs" % i, *members)


def _zset_cmd(i: int, rng: np.random.Generator, vals: ValueSource) -> bytes:
    args: list[bytes] = []
    for _ in range(int(rng.integers(3, 15))):
        args += [b"%.4f" % rng.random(), vals.take(rng, 10, 60)]
    return resp(b"ZADD", b"rank:query:%07d" % i, *args)


def batch_commands(seed: int, types: np.ndarray, start: int, vals: ValueSource) -> bytes:
    """RESP for keys start .. start+len(types): strings via MSET, the other types one command each."""
    rng = np.random.default_rng([seed, 4, 1, start])
    ids = np.arange(start, start + len(types))
    cmds = _string_cmds(ids[types == 0].tolist(), rng, vals)
    for i, t in zip(ids.tolist(), types.tolist()):
        if t == 1:
            cmds.append(_hash_cmd(i, rng, vals))
        elif t == 2:
            cmds.append(_list_cmd(i, rng, vals))
        elif t == 3:
            cmds.append(_set_cmd(i, rng))
        elif t == 4:
            cmds.append(_zset_cmd(i, rng, vals))
    return b"".join(cmds)


def pipe_load(server: RedisServer, chunks: Iterable[bytes]) -> None:
    """Stream RESP chunks through `redis-cli --pipe`; raise if redis reports errors."""
    proc = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p", str(server.port), "--pipe"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    for chunk in chunks:
        proc.stdin.write(chunk)
    proc.stdin.close()
    report = proc.stdout.read().decode(errors="replace")
    if proc.wait() != 0 or "errors: 0," not in report:
        raise RuntimeError(f"redis-cli --pipe failed: {report.strip()[-500:]}")


def write_redis(root: Path, seed: int, scale: float) -> int:
    """Load ~1M*scale keys into a fresh redis-server, SAVE, copy dump.rdb to redis/; return DBSIZE."""
    n = max(50, round(KEYS_AT_SCALE_1 * scale))
    types = np.random.default_rng([seed, 4, 2]).choice(len(TYPE_P), size=n, p=TYPE_P)
    vals = ValueSource(seed, max(1 << 20, min(64 << 20, n * 64)))
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp, redis_server(Path(tmp)) as srv:
        pipe_load(srv, (batch_commands(seed, types[s: s + BATCH], s, vals) for s in range(0, n, BATCH)))
        return _save_to(srv, root / "redis" / "dump.rdb")


def _save_to(srv: RedisServer, dest: Path) -> int:
    """SAVE, then place the server's dump.rdb at `dest` atomically; return DBSIZE."""
    client = srv.client()
    client.save()
    size = int(client.dbsize())
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copy2(srv.rdb, tmp)
    os.replace(tmp, dest)
    return size


def mutate_redis(root: Path, seed: int, pct: float) -> dict[str, int]:
    """Load redis/dump.rdb, change ~2*pct % of keys (modify/add/delete), SAVE back; return counts."""
    rdb = root / "redis" / "dump.rdb"
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        shutil.copy2(rdb, Path(tmp) / "dump.rdb")
        with redis_server(Path(tmp)) as srv:
            counts = _change_keys(srv, seed, pct)
            counts["dbsize"] = _save_to(srv, rdb)
    return counts


def _all_keys(srv: RedisServer) -> list[bytes]:
    return sorted(srv.client().scan_iter(count=10_000))


def _change_keys(srv: RedisServer, seed: int, pct: float) -> dict[str, int]:
    keys = _all_keys(srv)
    rng = np.random.default_rng([seed, 40])
    n_change = max(3, round(len(keys) * 2 * pct / 100))
    n_del, n_add = max(1, n_change * 15 // 100), max(1, n_change * 15 // 100)
    n_mod = n_change - n_del - n_add
    picked = [keys[int(i)] for i in rng.choice(len(keys), n_mod + n_del, replace=False)]
    vals = ValueSource(seed, 4 << 20)
    client = srv.client()
    types = _types(client, picked[:n_mod])
    pipe = client.pipeline(transaction=False)
    for key, kind in zip(picked[:n_mod], types):
        _modify(pipe, key, kind, rng, vals)
    if picked[n_mod:]:
        pipe.delete(*picked[n_mod:])
    for j in range(n_add):
        pipe.set(b"cache:llm:m%d-%07d" % (seed, j), vals.take(rng, 60, 700))
    pipe.execute()
    return {"modified": n_mod, "deleted": n_del, "added": n_add}


def _types(client: redis.Redis, keys: list[bytes]) -> list[bytes]:
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.type(k)
    return list(pipe.execute())


def _modify(p: redis.client.Pipeline, key: bytes, kind: bytes, rng: np.random.Generator,
            vals: ValueSource) -> None:
    """One realistic change per type: new cached answer, session touch, new chat turn, ..."""
    if kind == b"string":
        p.set(key, vals.take(rng, 60, 700), keepttl=True)
    elif kind == b"hash":
        p.hset(key, mapping={b"last_seen": int(rng.integers(1.73e9, 1.74e9)),
                             b"turns": int(rng.integers(1, 50))})
    elif kind == b"list":
        p.rpush(key, vals.take(rng, 40, 240))
    elif kind == b"set":
        p.sadd(key, b"doc-%06d" % rng.integers(0, 20_000))
    elif kind == b"zset":
        p.zadd(key, {vals.take(rng, 10, 60): float(rng.random())})


def redis_digest(rdb: Path) -> tuple[str, int]:
    """Order-independent digest (DEBUG DIGEST) and DBSIZE of a dump.rdb, from a throwaway server."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        shutil.copy2(rdb, Path(tmp) / "dump.rdb")
        with redis_server(Path(tmp)) as srv:
            client = srv.client()
            return client.execute_command("DEBUG", "DIGEST").decode(), int(client.dbsize())
