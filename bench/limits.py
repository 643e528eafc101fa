"""The disk's limits for the dataset, measured like a tool: cold walk, cold raw read, `cp -a`, raw write.

In: the work copy of the dataset (`src`) and a scratch directory on the same disk as the restore target.
Out: one record per call, phases `walk`, `read`, `copy`, `write` (Measurement dicts), the yardsticks the
report divides the tools' figures by (report.LIMIT_OF).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.measure import Meter
from bench.tree import remove_tree, tree_stats

NAME = "limits"
PHASES = ("walk", "read", "copy", "write")
DD_BLOCK = 4 * 1024 * 1024


def _timed(drop_cache: bool, body: Callable[[Meter], None], processed: int) -> dict:
    with Meter(drop_cache) as m:
        body(m)
    m.result.bytes_processed = processed
    return m.result.to_dict()


def walk(src: Path, drop_cache: bool) -> dict:
    """Cold metadata walk: every entry lstat-ed (`find -printf`), what a no-change backup cannot avoid."""
    return _timed(drop_cache, lambda m: m.run(["find", ".", "-printf", "%s %T@\n"], cwd=src), 0)


def read(src: Path, drop_cache: bool, size: int) -> dict:
    """Cold raw read of every file (`find -type f | xargs cat > /dev/null`): the floor of a full backup."""
    find = ["find", ".", "-type", "f", "-print0"]
    cat = ["xargs", "-0", "-n", "256", "cat"]
    return _timed(drop_cache, lambda m: m.run(find, cat, cwd=src), size)


def copy(src: Path, dest: Path, drop_cache: bool, size: int) -> dict:
    """`cp -a` of the dataset to the same disk, cold, synced: the floor of a restore that reads a repository."""
    remove_tree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return _timed(drop_cache, lambda m: m.run(["cp", "-a", str(src), str(dest)]), size)


def write(dest: Path, drop_cache: bool, size: int) -> dict:
    """Raw sequential write of one file of the dataset's size (`dd conv=fdatasync`): the disk's write speed."""
    dest.mkdir(parents=True, exist_ok=True)
    count = max(1, -(-size // DD_BLOCK))
    argv = ["dd", "if=/dev/zero", f"of={dest / 'dd.bin'}", f"bs={DD_BLOCK}", f"count={count}", "conv=fdatasync",
            "status=none"]
    return _timed(drop_cache, lambda m: m.run(argv), count * DD_BLOCK)


def measure(src: Path, scratch: Path, drop_cache: bool) -> dict[str, dict]:
    """Every limit, in a fixed order; scratch (copy and dd file) is removed afterwards."""
    size = tree_stats(src)[0]
    out = {"walk": walk(src, drop_cache), "read": read(src, drop_cache, size)}
    try:
        out["copy"] = copy(src, scratch / "copy", drop_cache, size)
        remove_tree(scratch / "copy")
        out["write"] = write(scratch / "dd", drop_cache, size)
    finally:
        remove_tree(scratch / "copy")
        remove_tree(scratch / "dd")
    return out

