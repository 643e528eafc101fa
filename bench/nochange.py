"""Time no-change backups through the real daemons: one full backup, then N more of unchanged data.

In: a dataset directory (bench.dataset's layout: documents, chroma, redis, config, processing),
a work directory, the number of no-change backups, whether to drop the page cache before each.
Out: one line per backup on stdout with its wall time and the CPU seconds the agent and the
controller spent on it (from /proc). The
reproduction of docs/PERFORMANCE.md "The no-change backup" (the benchmark's phase b, without
the other tools and phases, so a change can be measured in a minute).

    python -m bench.nochange /var/tmp/rb-bench/dataset-v1-seed42-scale1 /var/tmp/rb-nochange --runs 4
    python -m bench.nochange ... --cold       # page cache dropped before each (root), as bench.run does
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from bench.measure import drop_caches
from ragbackup.localstack import local_stack

COMPONENTS = ("documents", "chroma", "redis", "config", "processing")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("workdir", type=Path, help="emptied first; holds the stack and its repository")
    ap.add_argument("--runs", type=int, default=4, help="no-change backups after the full one")
    ap.add_argument("--cold", action="store_true",
                    help="drop the page cache before each no-change backup (needs root), as bench.run does")
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    st = local_stack(str(args.workdir), agent_socket=True)
    for comp in COMPONENTS:
        if (args.dataset / comp).exists():
            st.add_paths_component(comp, str(args.dataset / comp))
    st.start()
    try:
        st.ragctl("init")
        t = time.monotonic()
        st.ragctl("backup")
        print(f"full backup {time.monotonic() - t:.1f} s", flush=True)
        for _ in range(args.runs):
            if args.cold and not drop_caches():
                ap.error("--cold: cannot drop the page cache (needs root)")
            pids = st.pids()
            before = {name: cpu_s(pid) for name, pid in pids.items()}
            t = time.monotonic()
            st.ragctl("backup")
            wall = time.monotonic() - t
            cpu = " ".join(f"{name} {cpu_s(pid) - before[name]:.2f} CPU s" for name, pid in pids.items())
            print(f"no change {wall:.2f} s, {cpu}", flush=True)
    finally:
        st.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
