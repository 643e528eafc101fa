"""Soak: many days of backups with daily churn, forget and prune between, under an injected clock.

In: --cycles (days, default 200), --files (the dataset's size), --seed, --workdir. The daemons
run as processes (LocalStack) with RAG_BACKUP_CLOCK_FILE advanced one day per cycle; each day
rewrites, adds and deletes a few files, then backs up; every --every days `ragctl forget`
applies the retention policy (keep_daily 7, keep_weekly 4, keep_monthly 6) and `ragctl prune`
reclaims. Out: at the end `verify --read-data`, then every kept snapshot restored to a fresh
target and compared with the tree it was taken of (paths, types, modes, mtimes, link targets,
bytes); a JSON summary on stdout, exit 1 on any difference. Not a timed test:
    .venv/bin/python -m bench.soak --cycles 200 --workdir /var/tmp/rag-soak
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ragbackup.clock import CLOCK_FILE_ENV
from ragbackup.localstack import LocalStack

START = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.timezone.utc)
RETENTION = "[retention]\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 6\n"
COMPONENT = "docs"


def fingerprint(root: str) -> str:
    """One digest of everything below `root`: relative path, type, mode, mtime, link target or content."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            h.update(f"{os.path.relpath(path, root)}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0"
                     f"{st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def _write(path: str, rnd: random.Random) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(rnd.randbytes(rnd.randint(0, 64 * 1024)))
    os.chmod(path, rnd.choice((0o644, 0o600, 0o640)))


def build(root: str, files: int, rnd: random.Random) -> None:
    for i in range(files):
        _write(os.path.join(root, f"d{i % 17:02d}", f"file-{i:06d}.bin"), rnd)
    os.symlink("d00/file-000000.bin", os.path.join(root, "link"))


def churn_day(root: str, rnd: random.Random, day: int) -> None:
    """A day of use: 3 files rewritten, 2 added, 1 deleted."""
    existing = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".bin"))
    for path in rnd.sample(existing, min(3, len(existing))):
        _write(path, rnd)
    for k in range(2):
        _write(os.path.join(root, f"d{rnd.randrange(17):02d}", f"day-{day:04d}-{k}.bin"), rnd)
    victims = [p for p in existing if os.path.basename(p) != "file-000000.bin"]
    if victims:
        os.unlink(rnd.choice(victims))


def _set_clock(path: str, when: dt.datetime) -> None:
    with open(path + ".new", "w") as f:
        f.write(when.isoformat())
    os.replace(path + ".new", path)


def _json(st: LocalStack, *args: str) -> dict | list:
    return json.loads(st.ragctl(*args, "--json").stdout)


def _forget_and_prune(st: LocalStack, expected: dict[str, str]) -> int:
    """Apply the policy, drop what it forgot from `expected`, prune; returns how many were forgotten."""
    st.ragctl("forget")
    kept = {row["id"] for row in _json(st, "snapshots")}
    gone = [sid for sid in expected if sid not in kept]
    for sid in gone:
        del expected[sid]
    st.ragctl("prune")
    return len(gone)


def _restore_all(st: LocalStack, expected: dict[str, str], scratch: str) -> list[str]:
    """Restore every kept snapshot to a fresh target; returns the ids whose tree differs."""
    bad = []
    for sid, digest in sorted(expected.items()):
        target = os.path.join(scratch, sid)
        st.ragctl("restore", sid, "--target", target, "--components", COMPONENT)
        if fingerprint(os.path.join(target, COMPONENT)) != digest:
            bad.append(sid)
        shutil.rmtree(target)
    return bad


@dataclass(frozen=True)
class Soak:
    """What one soak does: days of backups, dataset size, seed, days between forget + prune."""

    cycles: int = 200
    files: int = 300
    seed: int = 1
    every: int = 7


def run_soak(workdir: str, soak: Soak, log: Callable[[str], None] = print) -> dict:
    """The whole soak in `workdir` (created); returns the summary (`different` lists failed restores)."""
    os.makedirs(workdir)
    rnd = random.Random(soak.seed)
    data, clock = os.path.join(workdir, "data"), os.path.join(workdir, "clock")
    build(data, soak.files, rnd)
    _set_clock(clock, START)
    st = LocalStack(os.path.join(workdir, "stack"), env={CLOCK_FILE_ENV: clock})
    st.extra_toml = RETENTION
    st.add_paths_component(COMPONENT, data)
    expected: dict[str, str] = {}
    forgotten, began = 0, time.monotonic()
    with st:
        st.ragctl("init")
        for day in range(soak.cycles):
            _set_clock(clock, START + dt.timedelta(days=day))
            churn_day(data, rnd, day)
            expected[_json(st, "backup")["id"]] = fingerprint(data)
            if (day + 1) % soak.every == 0:
                forgotten += _forget_and_prune(st, expected)
                log(f"day {day + 1}: {len(expected)} snapshots kept, {forgotten} forgotten")
        forgotten += _forget_and_prune(st, expected)
        st.ragctl("verify", "--read-data")
        different = _restore_all(st, expected, os.path.join(workdir, "restores"))
    return {"cycles": soak.cycles, "kept": len(expected), "forgotten": forgotten, "restored": len(expected),
            "different": different, "seconds": round(time.monotonic() - began, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=200, help="days of backups (default 200)")
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--every", type=int, default=7, help="forget and prune every N days (default 7)")
    ap.add_argument("--workdir", required=True, help="a directory that does not exist yet")
    args = ap.parse_args(argv)
    summary = run_soak(args.workdir, Soak(args.cycles, args.files, args.seed, args.every),
                       log=lambda line: print(line, file=sys.stderr))
    print(json.dumps(summary, indent=2))
    return 1 if summary["different"] else 0


if __name__ == "__main__":
    sys.exit(main())
