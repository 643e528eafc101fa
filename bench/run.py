"""Benchmark runner: every tool, interleaved, over the same pristine dataset; phases a-d, N runs.

In: --scale, --runs, --tools, --seeds, --mutate-pct, --out (and the dataset cache dir).
Out: bench-<stamp>-scale<s>.{json,md} in --out and the Markdown summary table on stdout. The disk's
limits (bench/limits.py) run as one more "tool" in the rotation, on the same fresh copy.
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

from bench import dataset, limits, report
from bench.measure import drop_caches
from bench.tools import TOOL_NAMES, Tool, ToolConfig, make_tool
from bench.tree import compare_trees, copy_tree, remove_tree, sync_tree, tree_stats

DEFAULT_DATA = Path("/var/tmp/ragbench")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Datasets:
    """One seed's pristine dataset and its mutated twins, one per --mutate-pct (in the sweep's order)."""

    seed: int
    mutate_seed: int
    pristine: Path
    mutated: dict[float, Path]
    info: dict

    @property
    def first_mutated(self) -> Path:
        return next(iter(self.mutated.values()))


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


def prepare(data_dir: Path, seed: int, scale: float, mseed: int, pcts: list[float]) -> Datasets:
    """The pristine dataset and one mutated twin per percentage (generated once, reused by every run)."""
    pristine = data_dir / f"dataset-v{dataset.GENERATOR_VERSION}-seed{seed}-scale{scale:g}"
    gen = _cached(pristine, lambda p: dataset.generate(p, seed, scale))

    def builder(pct: float) -> Callable[[Path], dict]:
        def build_mutated(p: Path) -> dict:
            copy_tree(pristine, p)
            return dataset.mutate(p, mseed, pct)
        return build_mutated

    mutated, infos = {}, {}
    for pct in pcts:
        mutated[pct] = data_dir / f"{pristine.name}-mut{mseed}-{pct:g}"
        infos[pct] = _cached(mutated[pct], builder(pct))
    return Datasets(seed, mseed, pristine, mutated, {"generate": gen, "mutate": infos[pcts[0]],
                                                     "mutate_by_pct": {f"{p:g}": i for p, i in infos.items()}})


def mutate_phase(pct: float, first: bool) -> str:
    """Phase name of the backup after a day of `pct` %: "mutate" for the sweep's first, "mutate_5" after."""
    return "mutate" if first else f"mutate_{pct:g}"


def _backup(tool: Tool, src: Path) -> dict:
    m = tool.backup(src)
    m.bytes_processed = tree_stats(src)[0]
    m.repo_bytes = tool.repo_size()
    return m.to_dict()


def _new_record(name: str, run: int, plan: RunPlan) -> dict:
    return {"run": run, "tool": name, "seed": plan.data.seed, "mutate_seed": plan.data.mutate_seed,
            "phases": {}, "verify": None, "error": None}


def run_limits(run: int, plan: RunPlan) -> dict:
    """The disk's limits on a fresh copy of the pristine dataset, like a tool-run (bench/limits.py)."""
    src, scratch = plan.work / "src", plan.work / "scratch"
    for d in (src, scratch):
        remove_tree(d)
    copy_tree(plan.data.pristine, src)
    record = _new_record(limits.NAME, run, plan)
    try:
        for phase, got in limits.measure(src, scratch, plan.drop_cache).items():
            record["phases"][phase] = got
            print(f"[bench]   limits {phase}: {got['wall_s']:.1f} s", file=sys.stderr, flush=True)
    except Exception:  # recorded like a tool's error
        record["error"] = traceback.format_exc()
    finally:
        remove_tree(scratch)
    return record


def _mutations(tool: Tool, src: Path, plan: RunPlan, record: dict) -> None:
    """Phase (c) once per percentage: the source synced to that day's twin and backed up.

    After the first, the source goes back to the pristine dataset first (untimed, not backed up), so each
    day's bytes added are against the first backup's data, whatever came before it in the sweep.
    """
    for i, (pct, mutated) in enumerate(plan.data.mutated.items()):
        if i:
            sync_tree(plan.data.pristine, src)
        written = sync_tree(mutated, src)
        record.setdefault("mutated_files_written", written)
        _phase(record, mutate_phase(pct, i == 0), lambda: _backup(tool, src))


def run_tool(name: str, run: int, plan: RunPlan) -> dict:
    """Phases a-d for one tool on a fresh copy of the pristine dataset; errors are recorded, not raised."""
    if name == limits.NAME:
        return run_limits(run, plan)
    src, repo, dest, scratch = (plan.work / d for d in ("src", "repo", "restore", "scratch"))
    for d in (src, repo, dest, scratch):
        remove_tree(d)
    copy_tree(plan.data.pristine, src)
    tool = make_tool(name, ToolConfig(scratch, plan.drop_cache))
    record = _new_record(name, run, plan)
    try:
        tool.init(repo)
        _phase(record, "full", lambda: _backup(tool, src))
        _phase(record, "nochange", lambda: _backup(tool, src))
        _mutations(tool, src, plan, record)
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


def schedule(tools: list[str], runs: int, seeds: list[int]) -> list[tuple[int, int, str]]:
    """(run, seed, tool) in execution order: each run goes through every seed, tools rotated per run."""
    return [(r, seed, t) for r, group in _by_run(interleaved(tools, runs)) for seed in seeds for t in group]


def _by_run(order: list[tuple[int, str]]) -> list[tuple[int, list[str]]]:
    out: list[tuple[int, list[str]]] = []
    for r, t in order:
        if not out or out[-1][0] != r:
            out.append((r, []))
        out[-1][1].append(t)
    return out


def parse_seeds(text: str, mutate_seed: int) -> list[tuple[int, int]]:
    """"42,1234:77" -> [(42, mutate_seed), (1234, 77)]: each dataset seed with its day's seed."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        seed, _, mseed = part.partition(":")
        out.append((int(seed), int(mseed) if mseed else mutate_seed))
    if not out:
        raise argparse.ArgumentTypeError("--seeds: at least one seed")
    return out


def parse_pcts(text: str) -> list[float]:
    """"1,5" -> [1.0, 5.0] (the --mutate-pct sweep, in order, without repeats)."""
    out: list[float] = []
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        pct = float(part)
        if not 0 < pct <= 100:
            raise argparse.ArgumentTypeError(f"--mutate-pct: {part} is not in (0, 100]")
        if pct not in out:
            out.append(pct)
    if not out:
        raise argparse.ArgumentTypeError("--mutate-pct: at least one percentage")
    return out


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
    p.add_argument("--seed", type=int, default=42, help="the dataset's seed (one dataset; see --seeds)")
    p.add_argument("--mutate-seed", type=int, default=43, help="the day's seed (for seeds given without one)")
    p.add_argument("--seeds", default=None,
                   help="several datasets in one run: SEED[:MUTATE_SEED],... e.g. 42:43,1234:77 (overrides --seed)")
    p.add_argument("--mutate-pct", default="1", help="percent changed by a day of use; a sweep: 1,5")
    p.add_argument("--no-limits", action="store_true", help="do not measure the disk's limits (bench/limits.py)")
    p.add_argument("--no-drop-caches", action="store_true", help="do not drop the page cache before timing")
    p.add_argument("--keep", action="store_true", help="keep repositories and restores of the last tool-run")
    p.add_argument("--prepare-only", action="store_true",
                   help="generate (or find) the dataset and its mutated twin in --data-dir, then exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    seeds = parse_seeds(args.seeds or str(args.seed), args.mutate_seed)
    pcts = parse_pcts(args.mutate_pct)
    data = {s: prepare(args.data_dir, s, args.scale, ms, pcts) for s, ms in seeds}
    if args.prepare_only:
        print("\n".join(str(p) for d in data.values() for p in (d.pristine, *d.mutated.values())))
        return 0
    work = args.data_dir / f"work-{os.getpid()}"
    tools, versions, skipped = split_tools([t.strip() for t in args.tools.split(",") if t.strip()], work)
    drop = not args.no_drop_caches and drop_caches()
    cache_drop = "yes" if drop else "not permitted"
    if args.no_drop_caches:
        cache_drop = "disabled (--no-drop-caches)"
    order = tools if args.no_limits else [*tools, limits.NAME]
    first = data[seeds[0][0]]
    meta = {"scale": args.scale, "seed": first.seed, "mutate_seed": first.mutate_seed, "seeds": seeds,
            "mutate_pct": pcts[0], "mutate_pcts": pcts, "runs": args.runs, "tools": tools,
            "limits": not args.no_limits, "skipped": skipped, "versions": versions, "started": started,
            "stamp": time.strftime("%Y%m%d-%H%M%S"), "cache_drop": cache_drop, "host": host_info(),
            "argv": sys.argv[1:] if argv is None else argv,
            "dataset": _dataset_meta(first), "datasets": {str(s): _dataset_meta(d) for s, d in data.items()}}
    records: list[dict] = []
    planned = schedule(order, args.runs, list(data))
    for run, seed, name in planned:
        print(f"[bench] run {run}/{args.runs}, seed {seed}: {name}", file=sys.stderr, flush=True)
        records.append(run_tool(name, run, RunPlan(data[seed], work, drop, args.keep)))
        # the report so far, rewritten after every tool-run: a long run stopped early keeps its results
        report.write(report.build({**meta, "complete": len(records) == len(planned)}, records, order), args.out)
    if not args.keep:
        remove_tree(work)
    full = report.build({**meta, "complete": True}, records, order)
    jpath, mpath = report.write(full, args.out)
    print(report.summary_table(full["summary"]))
    print(f"\nresults: {jpath}\n         {mpath}")
    return 1 if any(failed(r) for r in records) else 0


def failed(record: dict) -> bool:
    """A tool-run that errored or restored something different (the limits have no restore to check)."""
    if record["error"]:
        return True
    return record["tool"] != limits.NAME and not (record["verify"] or {}).get("ok")


def _dataset_meta(data: Datasets) -> dict:
    gen = data.info["generate"]
    return {"pristine": str(data.pristine), "mutated": {f"{p:g}": str(m) for p, m in data.mutated.items()},
            "sizes": gen["sizes"], "total_bytes": gen["total_bytes"], "counts": gen["counts"],
            "generate_seconds": gen["seconds"], "mutation": data.info["mutate"]["counts"],
            "mutation_by_pct": {p: i["counts"] for p, i in data.info["mutate_by_pct"].items()},
            "mutated_total_bytes": data.info["mutate"]["total_bytes"]}


if __name__ == "__main__":
    sys.exit(main())
