"""The benches no other test runs, end to end at their smallest size, so no API change breaks one silently.

In: `python -m bench.X` at `--scale 0.002` (or a few ids) with every path under tmp_path; the benches
start their own redis-server, `chroma run`, `weed server` and rag-backup daemons and stop them by PID.
Out: exit 0 and each report's keys, counts, verdicts and byte checks; a timing figure is never asserted.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench import dataset
from bench.tree import compare_trees

REPO = Path(__file__).resolve().parents[2]
SCALE = "0.002"
DATASET = f"dataset-42-{float(SCALE)}"  # bench.replicate.prepared_dataset's directory for --seed 42
BENCH_TIMEOUT = 200  # + 60 s of grace: under pytest's 300 s timeout, an interrupted bench stops its servers


def _run(module: str, *args: str) -> str:
    """Stdout of `python -m bench.<module> args` after asserting exit 0; past BENCH_TIMEOUT, SIGINT
    (its `finally` blocks stop the servers it started), then SIGKILL."""
    proc = subprocess.Popen([sys.executable, "-m", f"bench.{module}", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=BENCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"bench.{module} ran past {BENCH_TIMEOUT} s:\n{err[-3000:]}")
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return out


@pytest.fixture(scope="module")
def replicate_dir(tmp_path_factory) -> Path:
    """One --data-dir for both replication benches: the dataset is generated once and shared."""
    return tmp_path_factory.mktemp("replicate")


@pytest.mark.slow
@pytest.mark.s3
def test_replicate_bench_replicates_and_restores_from_s3_byte_for_byte(replicate_dir: Path, tmp_path: Path):
    report_path = tmp_path / "replicate.json"
    _run("replicate", "--scale", SCALE, "--put-mib", "1", "--data-dir", str(replicate_dir),
         "--out", str(report_path))
    report = json.loads(report_path.read_text())

    assert report["put"]["objects"] == 12 and report["put"]["object_mib"] == 1
    assert report["put_checked"]["mib_s"] > 0
    rag = report["ragbackup"]
    assert rag["replicate_bytes"] > 0 and "copying packs" in rag["replicate_timing"]
    assert report["runbook_upload"]["bytes"] > 0 and report["restic"]["repo_bytes"] > 0
    assert {"replication_vs_put", "put_checked_vs_put", "restore_vs_restic"} <= set(report)
    restored, src = replicate_dir / "work" / "ragbackup-restore", replicate_dir / DATASET
    for comp in dataset.COMPONENTS:  # restored from the tier, the local repository and state deleted
        cmp = compare_trees(src / comp, restored / comp)
        assert cmp.ok and cmp.files > 0, (comp, cmp.summary())


@pytest.mark.slow
@pytest.mark.s3
def test_replicate_profile_bench_profiles_the_copy_threads(replicate_dir: Path, tmp_path: Path):
    html = tmp_path / "copy.html"
    out = _run("replicate_profile", "--scale", SCALE, "--put-mib", "1", "--data-dir", str(replicate_dir),
               "--html", str(html))
    report = json.loads(out[out.rindex("\n{\n") + 1:])  # the JSON follows the profiles' text

    copy = report["copy"]
    # each component's data and the trees in packs of their own; index, metadata and the snapshot besides
    assert copy["packs"] >= len(dataset.COMPONENTS) + 1 and copy["objects"] >= 3 and copy["bytes"] > 0
    assert report["put"]["object_mib"] == 1 and "copy_vs_put" in report
    assert "TierCopy.copy_pack" in out and "copy_pack" in html.read_text()  # the copy threads were profiled


@pytest.mark.slow
@pytest.mark.chroma
def test_drill_bench_drills_every_component_within_the_target(tmp_path: Path):
    report_path = tmp_path / "drill.json"
    _run("drill", "--scale", SCALE, "--data-dir", str(tmp_path / "data"), "--out", str(report_path))
    report = json.loads(report_path.read_text())

    drill = report["drill"]
    assert drill["result"] == "SUCCESSFUL" and drill["failed"] == [] and report["within_target"] is True
    assert set(drill["components"]) == set(dataset.COMPONENTS)
    checks = {c["name"]: c["ok"] for comp in drill["components"].values() for c in comp["checks"]}
    assert all(checks.values())
    assert {"restore", "redis-dbsize", "chroma-counts", "chroma-probes"} <= set(checks)
    assert report["snapshot"] == drill["snapshot"] and report["counts"]["redis_keys"] > 0


@pytest.mark.slow
def test_prune_bench_forgets_and_prunes_with_both_tools(tmp_path: Path):
    out = tmp_path / "results"
    stdout = _run("prune", "--scale", SCALE, "--data-dir", str(tmp_path / "data"), "--out", str(out))
    [path] = out.glob("prune-*.json")
    report = json.loads(path.read_text())

    rag, restic = report["ragbackup"], report["restic"]
    assert rag["plan"]["snapshots"] == 2  # 5 backups, the 3 oldest forgotten
    assert rag["done"]["packs_deleted"] > 0 and 0 < rag["repo_after"] < rag["repo_before"]
    assert set(rag["jobs_s"]) == {"forget", "prune"} and rag["peak_rss"] > 0
    assert 0 < restic["repo_after"] < restic["repo_before"]
    assert stdout.startswith("tool ") and "ragbackup" in stdout and "restic" in stdout


def test_refset_memory_bench_holds_every_id_and_leaves_no_file(tmp_path: Path):
    ids = 120_000  # past one insert batch (ragbackup.repo.refs.BATCH)
    report = json.loads(_run("refset_memory", "--ids", str(ids), "--dir", str(tmp_path)))

    assert report["count"] == report["ids"] == ids and report["file_bytes"] > 0
    assert report["random_probe_found"] is False
    assert list(tmp_path.iterdir()) == []


def test_rdb_day_bench_generates_a_day_and_compares_both_storings(tmp_path: Path):
    report = json.loads(_run("rdb_day", "--scale", SCALE, "--work", str(tmp_path / "work")))

    assert report["speed"]["records"] > 1000 and report["speed"]["chunks"] > 0  # exit 0: rebuilt identical
    for way in ("records", "plain"):
        assert report[way]["new_chunks"] > 0 and report[way]["total"] > report[way]["new_compressed"] > 0
    assert report["ratio_records_to_plain"] > 0
    assert all(Path(f).stat().st_size > 0 for f in report["files"])
