"""Turning raw per-run measurements into medians (min-max), ratios to restic, Markdown and JSON.

In: run records ({run, tool, phases: {phase: Measurement dict}, verify, error}) and metadata.
Out: a report dict and a Markdown document, both written under the results directory.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

PHASES = ("full", "nochange", "mutate", "restore")
PHASE_TITLES = {"full": "a full", "nochange": "b no change", "mutate": "c after mutate",
                "restore": "d restore"}
FIGURES = ("wall_s", "cpu_s", "max_rss", "mb_per_s", "bytes_added", "repo_bytes")
BASELINE = "restic"


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
    """tool/restic for one figure, pairing runs by run number (only runs where both succeeded)."""
    base = {r["run"]: r for r in _ok_runs(records, BASELINE)}
    out = []
    for r in _ok_runs(records, tool):
        b = base.get(r["run"])
        if b and phase in r["phases"] and phase in b["phases"]:
            ratio = _ratio(r["phases"][phase][figure], b["phases"][phase][figure])
            if ratio is not None:
                out.append(ratio)
    return out


def summarize(records: list[dict], tools: list[str]) -> dict:
    """{tool: {phase: {figure: stats, "ratio_to_restic": {figure: stats}}}} over successful runs."""
    summary: dict = {}
    for tool in tools:
        runs = _ok_runs(records, tool)
        per_phase: dict = {}
        for phase in PHASES:
            got = [r["phases"][phase] for r in runs if phase in r["phases"]]
            if not got:
                continue
            entry = {f: stats([g[f] for g in got]) for f in FIGURES}
            entry["peak_rss_by_process"] = _rss_by_process(got)
            entry["ratio_to_restic"] = {f: stats(run_ratios(records, tool, phase, f)) for f in FIGURES}
            per_phase[phase] = entry
        summary[tool] = per_phase
    return summary


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
            rows.append(f"| {tool} | {PHASE_TITLES[phase]} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def rss_table(summary: dict) -> str:
    """Markdown: peak RSS of each process (median MB) per tool and phase."""
    rows = ["| tool | phase | peak RSS per process (MB, median) |", "|---|---|---|"]
    for tool, phases in summary.items():
        for phase, e in phases.items():
            procs = ", ".join(f"{n} {s['median'] / 1e6:,.1f}" for n, s in e["peak_rss_by_process"].items())
            rows.append(f"| {tool} | {PHASE_TITLES[phase]} | {procs} |")
    return "\n".join(rows)


def verify_table(records: list[dict]) -> str:
    rows = ["| run | tool | restore byte-check | files | bytes | error |", "|---|---|---|---|---|---|"]
    for r in records:
        v = r.get("verify") or {}
        ok = "pass" if v.get("ok") else ("FAIL" if v else "-")
        err = (r.get("error") or "").splitlines()[-1:] if r.get("error") else []
        rows.append(f"| {r['run']} | {r['tool']} | {ok} | {v.get('files', '-')} | {v.get('bytes', '-')} | "
                    f"{err[0][:120] if err else ''} |")
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
             "(restore) per wall second.", "", "## Summary", "", summary_table(report["summary"]), "",
             "## Peak RSS per process", "", rss_table(report["summary"]), "",
             "## Restore checks and errors", "", verify_table(report["records"]), ""]
    lines += dataset_section(m)
    lines += ["", "## Tools", ""] + [f"- {t}: {v}" for t, v in m["versions"].items()]
    lines += [f"- {t}: skipped ({why})" for t, why in m["skipped"].items()]
    return "\n".join(lines) + "\n"


def dataset_section(m: dict) -> list[str]:
    """Markdown lines: component sizes, generation time, what the mutation changed."""
    ds = m["dataset"]
    lines = ["## Dataset", "", f"Seed {m['seed']}, generated in {ds['generate_seconds']['total']:.0f} s "
             f"({', '.join(f'{k} {v:.0f} s' for k, v in ds['generate_seconds'].items() if k != 'total')}).",
             "", "| component | MB | files |", "|---|---|---|"]
    for name, s in ds["sizes"].items():
        lines.append(f"| {name} | {s['bytes'] / 1e6:,.1f} | {s['files']:,} |")
    lines += ["", f"Mutation (seed {m['mutate_seed']}, {m['mutate_pct']:g} %): "
              f"`{json.dumps(ds['mutation'], separators=(', ', ': '))}`", ""]
    return lines


def write(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write JSON and Markdown named bench-<timestamp>-scale<scale>; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{report['meta']['stamp']}-scale{report['meta']['scale']:g}"
    jpath, mpath = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    jpath.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    mpath.write_text(markdown(report))
    return jpath, mpath
