"""bench/scale.py: growth arithmetic against the smallest step, and a tiny run through the real daemons.

In: hand-made steps; a paths component of a few hundred small files. Out: assertions on the report.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import scale

REPO = Path(__file__).resolve().parents[2]


def _phase(wall: float, agent: int, controller: int) -> dict:
    return {"wall_s": wall, "cpu_s": wall, "peak_rss": {"agent": agent, "controller": controller}}


def test_growth_is_time_per_unit_and_rss_against_the_first_step() -> None:
    steps = [{"size": 1.0, "phases": {"full": _phase(10, 100, 50)}},
             {"size": 4.0, "phases": {"full": _phase(48, 110, 75)}}]
    g = scale.growth(steps)["4"]
    assert g["size_ratio"] == 4.0
    assert g["full"]["time_per_unit"] == pytest.approx(1.2)
    assert g["full"]["rss"] == {"agent": pytest.approx(1.1), "controller": pytest.approx(1.5)}
    md = scale.markdown({"meta": {"case": "dataset", "argv": ["--case", "dataset"], "started": "t",
                                  "cache_drop": "no"}, "steps": [{**s, "verify": {"ok": True}} for s in steps],
                         "growth": scale.growth(steps)})
    assert "| 4 | full | x1.20 | x1.10 | x1.50 |" in md


def test_small_files_are_distinct_and_spread_over_directories(tmp_path: Path) -> None:
    scale.make_files(tmp_path, 2500)
    dirs = sorted((tmp_path / "documents").iterdir())
    assert len(dirs) == 3 and sum(1 for d in dirs for _ in d.iterdir()) == 2500
    a, b = (tmp_path / "documents" / "d00000" / f"f{i:07d}.txt" for i in (0, 1))
    assert a.read_bytes() != b.read_bytes() and len(a.read_bytes()) == scale.SMALL_FILE


@pytest.mark.slow
def test_a_tiny_files_case_runs_through_the_daemons(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "bench.scale", "--case", "files", "--sizes", "200,400", "--data-dir",
            str(tmp_path / "data"), "--out", str(out), "--no-drop-caches"]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [jpath] = out.glob("scale-files-*.json")
    report = json.loads(jpath.read_text())
    assert [s["size"] for s in report["steps"]] == [200, 400]
    for s in report["steps"]:
        assert s["verify"]["ok"] and s["verify"]["files"] == s["size"]
        assert set(s["phases"]) == set(scale.PHASES)
        assert s["phases"]["full"]["peak_rss"]["agent"] > 0
    assert set(report["growth"]["400"]) >= {"full", "nochange", "restore"}
