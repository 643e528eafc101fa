"""Memory of prune's referenced-blob set (ragbackup.repo.refs.RefSet) at N ids.

In: --ids N (default 10 million). Out: one JSON line: insert seconds, peak RSS of this
process before and after, the set's file size, and a membership check. Run:
    .venv/bin/python -m bench.refset_memory --ids 10000000 --dir /var/tmp
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

from ragbackup.repo.refs import RefSet


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _ids(n: int, batch: int = 100_000):
    """n random 32-byte ids, produced a batch at a time (the set, not the generator, is measured)."""
    for start in range(0, n, batch):
        blob = os.urandom(32 * min(batch, n - start))
        yield from (blob[i:i + 32] for i in range(0, len(blob), 32))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ids", type=int, default=10_000_000)
    p.add_argument("--dir", default=tempfile.gettempdir())
    args = p.parse_args()
    path = os.path.join(args.dir, f"refset-bench-{os.getpid()}.sqlite")
    base = _peak()
    t0 = time.monotonic()
    refs = RefSet(path)
    refs.add(_ids(args.ids))
    took = time.monotonic() - t0
    size = os.path.getsize(path)
    count = refs.total()
    probe = os.urandom(32) in refs
    refs.close()
    print(json.dumps({"ids": args.ids, "count": count, "insert_s": round(took, 1), "peak_rss_before": base,
                      "peak_rss_after": _peak(), "peak_rss_growth": _peak() - base, "file_bytes": size,
                      "bytes_per_id": round(size / max(count, 1), 1), "random_probe_found": probe}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
