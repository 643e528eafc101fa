"""The whole benchmark at a tiny scale, so it never rots: dataset, every installed peer, phases a-d, reports.

In: rag-backup (its real daemons) and every peer tool installed here.
Out: assertions on the results JSON (phases present, restore byte-check passed); timing is never asserted.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PEERS = (("restic", "restic"), ("borg-lz4", "borg"), ("tarzstd", "zstd"), ("runbook", "gzip"))
PHASES = {"full", "nochange", "mutate", "restore"}

pytestmark = pytest.mark.slow


def _tools() -> list[str]:
    return [name for name, binary in PEERS if shutil.which(binary)] + ["ragbackup", "ragbackup-tls"]


def _run_bench(tmp_path: Path, tools: list[str], *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "bench.run", "--scale", "0.002", "--runs", "1", "--tools", ",".join(tools),
            "--out", str(out), "--data-dir", str(tmp_path / "data"), "--no-drop-caches", *extra]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    [jpath] = out.glob("bench-*-scale0.002.json")
    assert jpath.with_suffix(".md").exists()
    return proc, json.loads(jpath.read_text())


def test_tiny_benchmark_runs_every_phase_and_restores_byte_for_byte(tmp_path: Path) -> None:
    tools = _tools()
    proc, report = _run_bench(tmp_path, tools)

    assert report["meta"]["tools"] == tools
    assert {(r["run"], r["tool"]) for r in report["records"]} == {(1, t) for t in [*tools, "limits"]}
    for rec in [r for r in report["records"] if r["tool"] != "limits"]:
        assert rec["error"] is None, rec["error"]
        assert set(rec["phases"]) == PHASES
        assert rec["verify"]["ok"], rec["verify"]
        assert rec["verify"]["files"] > 50
        assert rec["phases"]["full"]["repo_bytes"] > 0
        assert rec["phases"]["mutate"]["bytes_added"] > 0
        assert rec["phases"]["restore"]["bytes_processed"] == rec["verify"]["bytes"]
    assert set(report["summary"]) == {*tools, "limits"}
    assert all(set(report["summary"][t]) == PHASES for t in tools)
    if "restic" in tools:
        assert report["summary"]["restic"]["full"]["ratio_to_restic"]["wall_s"]["median"] == 1.0
    assert "| tool | phase |" in proc.stdout
    [limits] = [r for r in report["records"] if r["tool"] == "limits"]
    assert limits["error"] is None and set(limits["phases"]) == {"walk", "read", "copy", "write"}
    assert limits["phases"]["read"]["bytes_processed"] == report["records"][0]["phases"]["full"]["bytes_processed"]
    assert report["summary"]["ragbackup"]["restore"]["ratio_to_limit"]["copy"]["n"] == 1


def test_two_seeds_and_a_sweep_in_one_run(tmp_path: Path) -> None:
    proc, report = _run_bench(tmp_path, ["ragbackup"], "--seeds", "42,7:9", "--mutate-pct", "1,5")

    assert report["meta"]["seeds"] == [[42, 43], [7, 9]] and report["meta"]["mutate_pcts"] == [1.0, 5.0]
    assert {(r["seed"], r["tool"]) for r in report["records"]} == {
        (s, t) for s in (42, 7) for t in ("ragbackup", "limits")}
    for rec in [r for r in report["records"] if r["tool"] == "ragbackup"]:
        assert rec["error"] is None, rec["error"]
        assert list(rec["phases"]) == ["full", "nochange", "mutate", "mutate_5", "restore"]
        assert rec["verify"]["ok"], rec["verify"]
        assert rec["phases"]["mutate_5"]["bytes_added"] > 0
    assert set(report["by_seed"]) == {"42", "7"}
    md = Path(proc.stdout.split("results: ")[1].split()[1]).read_text()
    assert "## By seed" in md and "c after mutate 5%" in md and "## Against the disk's limits" in md


def test_prepare_only_builds_the_cached_datasets_and_runs_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    argv = [sys.executable, "-m", "bench.run", "--scale", "0.002", "--prepare-only", "--data-dir", str(data),
            "--out", str(tmp_path / "results")]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    pristine, mutated = (Path(p) for p in proc.stdout.split())
    for d in (pristine, mutated):
        assert (d / "documents").is_dir() and d.with_name(d.name + ".json").exists()
    assert not (tmp_path / "results").exists() and not list(data.glob("work-*"))
