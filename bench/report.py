"""Turning raw per-run measurements into medians (min-max), ratios to restic, Markdown and JSON.

In: run records ({run, seed, tool, phases: {phase: Measurement dict}, verify, error}) and metadata;
records of the tool "limits" hold the disk's limits (walk, read, copy, write) of the same run and seed.
Out: a report dict (pooled over seeds and runs, and per seed) and a Markdown document, both written under
the results directory.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

PHASES = ("full", "nochange", "mutate", "restore")
PHASE_TITLES = {"full": "a full", "nochange": "b no change", "mutate": "c after mutate",
                "restore": "d restore", "walk": "cold walk (find)", "read": "cold read (cat)",
                "copy": "cp -a", "write": "dd write"}
FIGURES = ("wall_s", "cpu_s", "max_rss", "mb_per_s", "bytes_added", "repo_bytes")
BASELINE = "restic"
LIMITS = "limits"
# Each phase's yardsticks among the limits: a backup reads the data at best as fast as `cat`, a
# no-change backup walks it as `find` does, a restore writes it as `cp -a` (and `dd`) would.
LIMIT_OF = {"full": ("read",), "nochange": ("walk",), "mutate": ("read",), "restore": ("copy", "write")}


def limit_of(phase: str) -> tuple[str, ...]:
    """The limits a phase is divided by ("mutate_5" counts as "mutate")."""
    return LIMIT_OF.get(phase.split("_")[0], ())


def phase_title(phase: str) -> str:
    """'c after mutate 5%' for "mutate_5"; the fixed titles otherwise."""
    base, _, pct = phase.partition("_")
    title = PHASE_TITLES.get(base, base)
    return f"{title} {pct}%" if pct else title


def _key(r: dict) -> tuple[object, int]:
    """Records pair by seed and run number (the same dataset, the same minutes)."""
    return r.get("seed"), r["run"]


def stats(values: list[float]) -> dict[str, float] | None:
    """Median, min, max and count of a list of numbers (None when empty)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _ok_runs(records: list[dict], tool: str) -> list[dict]:
    return [r for r in records if r["tool"] == tool and not r.get("error")]


def _ratio(value: float, base: float) -> float | None:
    return value / base if base else None


def run_ratios(records: list[dict], tool: str, phase: str, figure: str) -> list[float]:
    """tool/restic for one figure, pairing runs by seed and run number (only runs where both succeeded)."""
    return paired_ratios(records, tool, phase, BASELINE, phase, figure)


def paired_ratios(records: list[dict], tool: str, phase: str, base_tool: str, base_phase: str,  # noqa: PLR0913
                  figure: str = "wall_s") -> list[float]:
    """tool's phase over base_tool's base_phase, one ratio per (seed, run) where both succeeded."""
    base = {_key(r): r for r in _ok_runs(records, base_tool)}
    out = []
    for r in _ok_runs(records, tool):
        b = base.get(_key(r))
        if b and phase in r["phases"] and base_phase in b["phases"]:
            ratio = _ratio(r["phases"][phase][figure], b["phases"][base_phase][figure])
            if ratio is not None:
                out.append(ratio)
    return out


def phases_of(records: list[dict]) -> list[str]:
    """Every phase name in the records, in the order first seen."""
    out: list[str] = []
    for r in records:
        out += [p for p in r["phases"] if p not in out]
    return out


def summarize(records: list[dict], tools: list[str]) -> dict:
    """{tool: {phase: {figure: stats, "ratio_to_restic": {figure: stats}, "ratio_to_limit": {limit: stats}}}}
    over successful runs (of every seed in `records`)."""
    summary: dict = {}
    phases = phases_of(records)
    for tool in tools:
        runs = _ok_runs(records, tool)
        per_phase: dict = {}
        for phase in phases:
            got = [r["phases"][phase] for r in runs if phase in r["phases"]]
            if not got:
                continue
            entry = {f: stats([g[f] for g in got]) for f in FIGURES}
            entry["peak_rss_by_process"] = _rss_by_process(got)
            entry["ratio_to_restic"] = {f: stats(run_ratios(records, tool, phase, f)) for f in FIGURES}
            entry["ratio_to_limit"] = {lim: stats(paired_ratios(records, tool, phase, LIMITS, lim))
                                       for lim in limit_of(phase)}
            per_phase[phase] = entry
        summary[tool] = per_phase
    return summary


def build(meta: dict, records: list[dict], tools: list[str]) -> dict:
    """The whole report: meta, the summary pooled over seeds and runs, one summary per seed, the records."""
    seeds = list(dict.fromkeys(r.get("seed") for r in records))  # in the order they ran
    by_seed = {str(s): summarize([r for r in records if r.get("seed") == s], tools) for s in seeds}
    return {"meta": meta, "summary": summarize(records, tools), "by_seed": by_seed, "records": records}


def _rss_by_process(got: list[dict]) -> dict[str, dict]:
    names = sorted({n for g in got for n in g["peak_rss"]})
    return {n: stats([g["peak_rss"][n] for g in got if n in g["peak_rss"]]) for n in names}


def _num(v: float, figure: str) -> str:
    if figure in ("max_rss", "bytes_added", "repo_bytes"):
        return f"{v / 1e6:,.1f}"
    return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"


def cell(s: dict | None, figure: str) -> str:
    """'median' or 'median [min-max]' in the figure's unit."""
    if s is None:
        return "-"
    med = _num(s["median"], figure)
    if s["n"] > 1 and s["min"] != s["max"]:
        return f"{med} [{_num(s['min'], figure)}-{_num(s['max'], figure)}]"
    return med


def ratio_cell(s: dict | None) -> str:
    """'x1.25' or 'x1.25 [1.10-1.40]'; '>x1000' when restic's figure is ~0 (e.g. bytes added, no change)."""
    if s is None:
        return ""
    if s["median"] > 1000:
        return ">x1000"
    if s["n"] > 1 and abs(s["max"] - s["min"]) > 0.005:
        return f"x{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]"
    return f"x{s['median']:.2f}"


COLUMNS = (("wall_s", "wall s"), ("cpu_s", "CPU s"), ("max_rss", "peak RSS MB"), ("mb_per_s", "MB/s"),
           ("bytes_added", "added MB"), ("repo_bytes", "repo MB"))


def summary_table(summary: dict) -> str:
    """Markdown: one row per tool and phase; each figure with its ratio to restic (same run)."""
    head = "| tool | phase | " + " | ".join(f"{t} | vs restic" for _, t in COLUMNS) + " |"
    rows = [head, "|" + "---|" * (2 + 2 * len(COLUMNS))]
    for tool, phases in summary.items():
        for phase, e in phases.items():
            cells = [f"{cell(e[f], f)} | {ratio_cell(e['ratio_to_restic'][f])}" for f, _ in COLUMNS]
            rows.append(f"| {tool} | {phase_title(phase)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def limits_table(summary: dict) -> str:
    """Markdown: each tool's wall time over the limit of the same seed and run (median [min-max])."""
    rows = ["| tool | phase | wall s | limit | limit's wall s | tool / limit |", "|---|---|---|---|---|---|"]
    lim = summary.get(LIMITS, {})
    for tool, phases in summary.items():
        if tool == LIMITS:
            continue
        for phase, e in phases.items():
            for name, s in e.get("ratio_to_limit", {}).items():
                rows.append(f"| {tool} | {phase_title(phase)} | {cell(e['wall_s'], 'wall_s')} | "
                            f"{PHASE_TITLES[name]} | {cell(lim.get(name, {}).get('wall_s'), 'wall_s')} | "
                            f"{ratio_cell(s).lstrip('x') or '-'} |")
    return "\n".join(rows)


def seeds_table(by_seed: dict) -> str:
    """Markdown: wall time, ratio to restic and to the limit, one column group per seed."""
    seeds = list(by_seed)
    head = "| tool | phase | " + " | ".join(f"seed {s}: wall s | vs restic | vs limit" for s in seeds) + " |"
    rows = [head, "|" + "---|" * (2 + 3 * len(seeds))]
    first = by_seed[seeds[0]] if seeds else {}
    for tool, phases in first.items():
        if tool == LIMITS:
            continue
        for phase in phases:
            cells = []
            for s in seeds:
                e = by_seed[s].get(tool, {}).get(phase)
                if e is None:
                    cells.append("- | | ")
                    continue
                lims = e.get("ratio_to_limit", {})
                to_lim = ratio_cell(next(iter(lims.values()))) if lims else ""
                cells.append(f"{cell(e['wall_s'], 'wall_s')} | {ratio_cell(e['ratio_to_restic']['wall_s'])} | "
                             f"{to_lim}")
            rows.append(f"| {tool} | {phase_title(phase)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def rss_table(summary: dict) -> str:
    """Markdown: peak RSS of each process (median MB) per tool and phase."""
    rows = ["| tool | phase | peak RSS per process (MB, median) |", "|---|---|---|"]
    for tool, phases in summary.items():
        for phase, e in phases.items():
            procs = ", ".join(f"{n} {s['median'] / 1e6:,.1f}" for n, s in e["peak_rss_by_process"].items())
            rows.append(f"| {tool} | {phase_title(phase)} | {procs} |")
    return "\n".join(rows)


def verify_table(records: list[dict]) -> str:
    rows = ["| run | seed | tool | restore byte-check | files | bytes | error |", "|---|---|---|---|---|---|---|"]
    for r in records:
        v = r.get("verify") or {}
        ok = "pass" if v.get("ok") else ("FAIL" if v else "-")
        err = (r.get("error") or "").splitlines()[-1:] if r.get("error") else []
        rows.append(f"| {r['run']} | {r.get('seed', '-')} | {r['tool']} | {ok} | {v.get('files', '-')} | "
                    f"{v.get('bytes', '-')} | {err[0][:120] if err else ''} |")
    return "\n".join(rows)


def markdown(report: dict) -> str:
    """The full Markdown report."""
    m = report["meta"]
    lines = [f"# rag-backup benchmark, scale {m['scale']} ({m['dataset']['total_bytes'] / 1e9:.2f} GB), "
             f"{m['runs']} run(s)", "",
             f"Started {m['started']}, host {m['host']['cpus']} CPUs / {m['host']['mem_gb']} GB RAM, "
             f"kernel {m['host']['kernel']}. Page cache dropped before each timed step: "
             f"{m['cache_drop']}. Each timed step ends with sync(2).", "",
             "Cells: median [min-max] over runs; `vs restic`: the ratio to restic in the same run "
             "(median [min-max] of per-run ratios). MB = 10^6 bytes. MB/s = bytes read (backup) or written "
             "(restore) per wall second.", ""]
    if m.get("complete") is False:
        lines += [f"**Partial report**: {len(report['records'])} tool-runs so far (the run was still going or "
                  "was stopped).", ""]
    if m.get("argv") is not None:
        lines += ["Command: `python -m bench.run " + " ".join(m["argv"]) + "`", ""]
    lines += ["## Summary (every seed and run)", "", summary_table(report["summary"]), ""]
    if LIMITS in report["summary"]:
        lines += ["## Against the disk's limits", "",
                  "Each tool's wall time over the limit measured in the same run on the same dataset "
                  "(bench/limits.py): `find` cold for (b), `cat` of every file cold for (a) and (c), `cp -a` to "
                  "the same disk and a `dd conv=fdatasync` of the dataset's size for (d).", "",
                  limits_table(report["summary"]), ""]
    if len(report.get("by_seed", {})) > 1:
        lines += ["## By seed", "", "Wall s median [min-max] over runs; ratios median [min-max] over runs "
                  "(vs limit: the first limit of the phase).", "", seeds_table(report["by_seed"]), ""]
    lines += ["## Peak RSS per process", "", rss_table(report["summary"]), "",
             "## Restore checks and errors", "", verify_table(report["records"]), ""]
    lines += dataset_section(m)
    lines += ["", "## Tools", ""] + [f"- {t}: {v}" for t, v in m["versions"].items()]
    lines += [f"- {t}: skipped ({why})" for t, why in m["skipped"].items()]
    return "\n".join(lines) + "\n"


def dataset_section(m: dict) -> list[str]:
    """Markdown lines: component sizes, generation time, what the mutation changed (per seed)."""
    lines = ["## Dataset", ""]
    seeds = m.get("seeds") or [[m["seed"], m["mutate_seed"]]]
    for seed, mseed in seeds:
        ds = m.get("datasets", {}).get(str(seed), m["dataset"])
        gen = ds["generate_seconds"]
        lines += [f"Seed {seed}, generated in {gen['total']:.0f} s "
                  f"({', '.join(f'{k} {v:.0f} s' for k, v in gen.items() if k != 'total')}).",
                  "", "| component | MB | files |", "|---|---|---|"]
        for name, s in ds["sizes"].items():
            lines.append(f"| {name} | {s['bytes'] / 1e6:,.1f} | {s['files']:,} |")
        by_pct = ds.get("mutation_by_pct") or {f"{m['mutate_pct']:g}": ds["mutation"]}
        for pct, counts in by_pct.items():
            lines += ["", f"Mutation (seed {mseed}, {pct} %): `{json.dumps(counts, separators=(', ', ': '))}`"]
        lines.append("")
    return lines


def write(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write JSON and Markdown named bench-<timestamp>-scale<scale>; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{report['meta']['stamp']}-scale{report['meta']['scale']:g}"
    jpath, mpath = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    jpath.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    mpath.write_text(markdown(report))
    return jpath, mpath
