"""Benchmark runner: every tool, interleaved, over the same pristine dataset; phases a-d, N runs.

In: --scale, --runs, --tools, --out (and the dataset cache dir).
Out: bench-<stamp>-scale<s>.{json,md} in --out and the Markdown summary table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import dataset, report
from bench.measure import drop_caches
from bench.tools import TOOL_NAMES, Tool, ToolConfig, make_tool
from bench.tree import compare_trees, copy_tree, remove_tree, sync_tree, tree_stats

DEFAULT_DATA = Path("/var/tmp/ragbench")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Datasets:
    pristine: Path
    mutated: Path
    info: dict


@dataclass(frozen=True)
class RunPlan:
    """What one tool-run needs: the datasets, a work dir, and the page-cache policy."""

    data: Datasets
    work: Path
    drop_cache: bool
    keep: bool = False


def _cached(path: Path, build: Callable[[Path], dict]) -> dict:
    """Build `path` once; a sidecar <path>.json marks it complete and holds the builder's summary."""
    marker = path.with_name(path.name + ".json")
    if marker.exists() and path.exists():
        return json.loads(marker.read_text())
    remove_tree(path)
    info = build(path)
    marker.write_text(json.dumps(info, indent=2))
    return info


def prepare(data_dir: Path, seed: int, scale: float, mseed: int, pct: float) -> Datasets:
    """The pristine dataset and its mutated twin (generated once, reused by every run)."""
    pristine = data_dir / f"dataset-v{dataset.GENERATOR_VERSION}-seed{seed}-scale{scale:g}"
    mutated = data_dir / f"{pristine.name}-mut{mseed}-{pct:g}"
    gen = _cached(pristine, lambda p: dataset.generate(p, seed, scale))

    def build_mutated(p: Path) -> dict:
        copy_tree(pristine, p)
        return dataset.mutate(p, mseed, pct)

    mut = _cached(mutated, build_mutated)
    return Datasets(pristine, mutated, {"generate": gen, "mutate": mut})


def _backup(tool: Tool, src: Path) -> dict:
    m = tool.backup(src)
    m.bytes_processed = tree_stats(src)[0]
    m.repo_bytes = tool.repo_size()
    return m.to_dict()


def run_tool(name: str, run: int, plan: RunPlan) -> dict:
    """Phases a-d for one tool on a fresh copy of the pristine dataset; errors are recorded, not raised."""
    src, repo, dest, scratch = (plan.work / d for d in ("src", "repo", "restore", "scratch"))
    for d in (src, repo, dest, scratch):
        remove_tree(d)
    copy_tree(plan.data.pristine, src)
    tool = make_tool(name, ToolConfig(scratch, plan.drop_cache))
    record: dict = {"run": run, "tool": name, "phases": {}, "verify": None, "error": None}
    try:
        tool.init(repo)
        _phase(record, "full", lambda: _backup(tool, src))
        _phase(record, "nochange", lambda: _backup(tool, src))
        record["mutated_files_written"] = sync_tree(plan.data.mutated, src)
        _phase(record, "mutate", lambda: _backup(tool, src))
        _phase(record, "restore", lambda: _restore(tool, src, dest, record))
    except Exception:  # a failing tool must not stop the others; the traceback goes into the report
        record["error"] = traceback.format_exc()
    finally:
        _close(tool, record)
        if not plan.keep:
            for d in (repo, dest, scratch):
                remove_tree(d)
    return record


def _phase(record: dict, phase: str, body: Callable[[], dict]) -> None:
    record["phases"][phase] = got = body()
    repo_mb = got["repo_bytes"] / 1e6
    print(f"[bench]   {record['tool']} {phase}: {got['wall_s']:.1f} s, repo {repo_mb:,.0f} MB",
          file=sys.stderr, flush=True)


def _close(tool: Tool, record: dict) -> None:
    try:
        tool.close()
    except Exception:  # stopping a stack can fail too; keep the first error, report this one otherwise
        record["error"] = record["error"] or traceback.format_exc()


def _restore(tool: Tool, src: Path, dest: Path, record: dict) -> dict:
    m = tool.restore(dest)
    cmp = compare_trees(src, dest)
    record["verify"] = cmp.summary()
    m.bytes_processed = cmp.bytes
    m.repo_bytes = tool.repo_size()
    return m.to_dict()


def interleaved(tools: list[str], runs: int) -> list[tuple[int, str]]:
    """(run, tool) in execution order: the tool order rotates each run so no tool always goes first."""
    order: list[tuple[int, str]] = []
    for r in range(runs if tools else 0):
        k = r % len(tools)
        order += [(r + 1, t) for t in tools[k:] + tools[:k]]
    return order


def host_info() -> dict:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpus": os.cpu_count(), "mem_gb": round(mem / 2**30, 1), "kernel": platform.release(),
            "python": platform.python_version(), "node": platform.node()}


def split_tools(names: list[str], scratch: Path) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(runnable tools, their versions, skipped tools with the reason)."""
    ok, versions, skipped = [], {}, {}
    for n in names:
        tool = make_tool(n, ToolConfig(scratch))
        why = tool.unavailable()
        if why:
            skipped[n] = why
        else:
            ok.append(n)
            versions[n] = tool.version()
    return ok, versions, skipped


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tools", default=",".join(TOOL_NAMES), help=f"comma-separated: {','.join(TOOL_NAMES)}")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="dataset cache and work area")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--mutate-seed", type=int, default=43)
    p.add_argument("--mutate-pct", type=float, default=1.0)
    p.add_argument("--no-drop-caches", action="store_true", help="do not drop the page cache before timing")
    p.add_argument("--keep", action="store_true", help="keep repositories and restores of the last tool-run")
    p.add_argument("--prepare-only", action="store_true",
                   help="generate (or find) the dataset and its mutated twin in --data-dir, then exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    data = prepare(args.data_dir, args.seed, args.scale, args.mutate_seed, args.mutate_pct)
    if args.prepare_only:
        print(f"{data.pristine}\n{data.mutated}")
        return 0
    work = args.data_dir / f"work-{os.getpid()}"
    tools, versions, skipped = split_tools([t.strip() for t in args.tools.split(",") if t.strip()], work)
    drop = not args.no_drop_caches and drop_caches()
    cache_drop = "yes" if drop else "not permitted"
    if args.no_drop_caches:
        cache_drop = "disabled (--no-drop-caches)"
    plan = RunPlan(data, work, drop, args.keep)
    records = []
    for run, name in interleaved(tools, args.runs):
        print(f"[bench] run {run}/{args.runs}: {name}", file=sys.stderr, flush=True)
        records.append(run_tool(name, run, plan))
    if not args.keep:
        remove_tree(work)
    meta = {"scale": args.scale, "seed": args.seed, "mutate_seed": args.mutate_seed,
            "mutate_pct": args.mutate_pct, "runs": args.runs, "tools": tools, "skipped": skipped,
            "versions": versions, "started": started, "stamp": time.strftime("%Y%m%d-%H%M%S"),
            "cache_drop": cache_drop, "host": host_info(), "dataset": _dataset_meta(data)}
    full = {"meta": meta, "summary": report.summarize(records, tools), "records": records}
    jpath, mpath = report.write(full, args.out)
    print(report.summary_table(full["summary"]))
    print(f"\nresults: {jpath}\n         {mpath}")
    return 1 if any(r["error"] or not (r["verify"] or {}).get("ok") for r in records) else 0


def _dataset_meta(data: Datasets) -> dict:
    gen = data.info["generate"]
    return {"pristine": str(data.pristine), "mutated": str(data.mutated), "sizes": gen["sizes"],
            "total_bytes": gen["total_bytes"], "counts": gen["counts"], "generate_seconds": gen["seconds"],
            "mutation": data.info["mutate"]["counts"],
            "mutated_total_bytes": data.info["mutate"]["total_bytes"]}


if __name__ == "__main__":
    sys.exit(main())
