"""Scale and memory: rag-backup's daemons on growing inputs; peak RSS should stay flat and times grow linearly.

In: --case files (a paths component of N small files), redis (an RDB of N keys), dataset (the benchmark
dataset at scale N); --sizes, the N of each step, smallest first. Each step: a full backup, a no-change
backup and a restore through the real daemons (bench/tools.RagBackupTool), page cache dropped.
Out: scale-<case>-<stamp>.{json,md} in --out: per step wall, CPU and the agent's and controller's peak
RSS per phase, and against the smallest step the RSS growth (target: within +20 %) and the time per unit
(linear: about 1.0x).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import dataset, gen_redis
from bench.measure import drop_caches
from bench.tools import RagBackupTool, ToolConfig
from bench.tree import compare_trees, remove_tree

DEFAULT_DATA = Path("/var/tmp/ragbench-scale")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
FILES_PER_DIR = 1000
SMALL_FILE = 2048  # bytes of each small file (text-like, compressible, distinct)
PHASES = ("full", "nochange", "restore")
DAEMONS = ("agent", "controller")
RSS_GROWTH_TARGET = 1.20
CASES = {"files": "small files", "redis": "Redis keys", "dataset": "dataset scale"}


def make_files(root: Path, n: int) -> None:
    """`n` distinct small files, FILES_PER_DIR to a directory, under root/documents/."""
    base = root / "documents"  # a paths component the benchmark declares (bench/tools.COMPONENTS)
    for i in range(n):
        d = base / f"d{i // FILES_PER_DIR:05d}"
        if i % FILES_PER_DIR == 0:
            d.mkdir(parents=True, exist_ok=True)
        line = f"file {i:09d} of {n}: cached chunk of an uploaded document, ".encode()
        (d / f"f{i:07d}.txt").write_bytes((line * (SMALL_FILE // len(line) + 1))[:SMALL_FILE])


def make_redis(root: Path, keys: int) -> None:
    """root/redis/dump.rdb with `keys` keys (the benchmark's key mix, a real redis-server's SAVE)."""
    gen_redis.write_redis(root, 42, keys / gen_redis.KEYS_AT_SCALE_1)


def make_dataset(root: Path, scale: float) -> None:
    """The benchmark dataset (bench/dataset.py) at `scale`."""
    dataset.generate(root, 42, scale)


BUILDERS: dict[str, Callable[[Path, float], None]] = {
    "files": lambda root, n: make_files(root, int(n)),
    "redis": lambda root, n: make_redis(root, int(n)),
    "dataset": make_dataset,
}


def source(data_dir: Path, case: str, size: float) -> Path:
    """The cached input of one step (built once; a <dir>.done marker says it is complete)."""
    root = data_dir / f"{case}-{size:g}"
    done = root.with_name(root.name + ".done")
    if not (done.exists() and root.exists()):
        remove_tree(root)
        root.mkdir(parents=True)
        BUILDERS[case](root, size)
        done.write_text("ok\n")
    return root


def step(src: Path, work: Path, drop: bool) -> dict:
    """Full, no-change and restore of `src` through the daemons; figures per phase and the byte check."""
    repo, dest, scratch = work / "repo", work / "restore", work / "scratch"
    for d in (repo, dest, scratch):
        remove_tree(d)
    tool = RagBackupTool(ToolConfig(scratch, drop))
    out: dict = {"phases": {}, "verify": None}
    try:
        tool.init(repo)
        for phase in ("full", "nochange"):
            out["phases"][phase] = tool.backup(src).to_dict()
        out["phases"]["restore"] = tool.restore(dest).to_dict()
        out["verify"] = compare_trees(src, dest).summary()
    finally:
        tool.close()
        for d in (repo, dest, scratch):
            remove_tree(d)
    return out


def growth(steps: list[dict]) -> dict:
    """Against the first step: each daemon's peak RSS ratio per phase, and time per unit ratio per phase."""
    first = steps[0]
    out: dict = {}
    for s in steps[1:]:
        k = s["size"] / first["size"]
        row: dict = {"size_ratio": k}
        for phase in PHASES:
            a, b = first["phases"].get(phase), s["phases"].get(phase)
            if not (a and b):
                continue
            row[phase] = {"time_per_unit": (b["wall_s"] / k) / a["wall_s"] if a["wall_s"] else None,
                          "rss": {d: b["peak_rss"].get(d, 0) / a["peak_rss"][d] for d in DAEMONS
                                  if a["peak_rss"].get(d)}}
        out[f"{s['size']:g}"] = row
    return out


def markdown(report: dict) -> str:
    m = report["meta"]
    lines = [f"# rag-backup at scale: {CASES[m['case']]}", "", f"Command: `python -m bench.scale "
             f"{' '.join(m['argv'])}`. Started {m['started']}; page cache dropped: {m['cache_drop']}.", "",
             f"| {CASES[m['case']]} | phase | wall s | CPU s | agent RSS MB | controller RSS MB | restore check |",
             "|---|---|---|---|---|---|---|"]
    for s in report["steps"]:
        ok = "pass" if (s.get("verify") or {}).get("ok") else "FAIL"
        for phase, p in s["phases"].items():
            rss = p["peak_rss"]
            lines.append(f"| {s['size']:,g} | {phase} | {p['wall_s']:.2f} | {p['cpu_s']:.2f} | "
                         f"{rss.get('agent', 0) / 1e6:,.1f} | {rss.get('controller', 0) / 1e6:,.1f} | {ok} |")
    lines += ["", f"Against the smallest step (RSS target: at most x{RSS_GROWTH_TARGET:.2f}; time per unit: "
              "1.00 is linear):", "", "| size | phase | time per unit | agent RSS | controller RSS |",
              "|---|---|---|---|---|"]
    for size, row in report["growth"].items():
        for phase in PHASES:
            g = row.get(phase)
            if g:
                tpu = "-" if g["time_per_unit"] is None else f"x{g['time_per_unit']:.2f}"
                rss = [f"x{g['rss'][d]:.2f}" if d in g["rss"] else "-" for d in DAEMONS]
                lines.append(f"| {size} | {phase} | {tpu} | {rss[0]} | {rss[1]} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=sorted(CASES), required=True)
    p.add_argument("--sizes", required=True,
                   help="comma-separated, smallest first: files (e.g. 250000,1000000), keys "
                        "(2500000,10000000) or dataset scales (1,4)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="inputs (cached) and work area")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--no-drop-caches", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    sizes = [float(x) for x in args.sizes.split(",") if x.strip()]
    drop = not args.no_drop_caches and drop_caches()
    meta = {"case": args.case, "sizes": sizes, "argv": argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cache_drop": "yes" if drop else "no"}
    steps = []
    for size in sizes:
        src = source(args.data_dir, args.case, size)
        print(f"[scale] {args.case} {size:g}", file=sys.stderr, flush=True)
        steps.append({"size": size, **step(src, args.data_dir / f"work-{os.getpid()}", drop)})
    report = {"meta": meta, "steps": steps, "growth": growth(steps)}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"scale-{args.case}-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all((s.get("verify") or {}).get("ok") for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
