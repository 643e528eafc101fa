"""Prune benchmark: rag-backup's forget + prune beside `restic forget --prune` on the same history.

In: --scale (the benchmark dataset, bench/dataset.py), --data-dir. Out: a JSON report (and a
table on stdout): 5 backups with a day of use (--mutate-pct) between them, then the 3 oldest
snapshots forgotten and pruned by each tool; wall time, peak RSS and repository size before
and after. rag-backup runs as the real daemons (LocalStack); its controller is restarted just
before forget, so its VmHWM afterwards is the peak of forget + prune. Not a timed test.
    .venv/bin/python -m bench.prune --scale 0.05 --data-dir /var/tmp/ragbench-prune
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ragbackup.localstack import LocalStack

from bench import dataset
from bench.measure import vm_hwm

PASSWORD = "bench-prune"
BACKUPS, FORGET = 5, 3


def _dir_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def _timed(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS of the process in bytes, stdout) of one command; raises on failure."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {err[-2000:]}")
    return wall, usage.ru_maxrss * 1024, out


class Restic:
    def __init__(self, work: Path):
        self.repo = work / "restic-repo"
        self.env = {**os.environ, "RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(self.repo),
                    "RESTIC_CACHE_DIR": str(work / "restic-cache")}
        subprocess.run(["restic", "init", "--repository-version", "2"], env=self.env, check=True, capture_output=True)

    def backup(self, src: Path) -> None:
        _timed(["restic", "backup", "--compression", "auto", "--host", "bench", "--quiet", "."], self.env, src)

    def ids(self) -> list[str]:
        out = subprocess.run(["restic", "snapshots", "--json"], env=self.env, check=True, capture_output=True,
                             text=True).stdout
        return [s["short_id"] for s in sorted(json.loads(out), key=lambda s: s["time"])]

    def forget_prune(self, ids: list[str]) -> dict:
        before = _dir_bytes(self.repo)
        wall, rss, _ = _timed(["restic", "forget", *ids, "--prune"], self.env)
        return {"wall_s": round(wall, 2), "peak_rss": rss, "repo_before": before, "repo_after": _dir_bytes(self.repo)}


def _job_seconds(jobs: list[dict], kinds: tuple[str, ...]) -> dict[str, float]:
    """Controller-side duration of the latest job of each kind (job records: whole seconds)."""
    out = {}
    for kind in kinds:
        j = max((j for j in jobs if j["kind"] == kind), key=lambda j: j["id"])
        start, end = (dt.datetime.fromisoformat(j[k].replace("Z", "+00:00")) for k in ("started", "finished"))
        out[kind] = (end - start).total_seconds()
    return out


class RagBackup:
    def __init__(self, work: Path, src: Path):
        self.stack = LocalStack(str(work / "ragbackup"))
        self.stack.add_paths_component("data", str(src))
        self.stack.start()
        self.stack.ragctl("init")

    def backup(self) -> None:
        self.stack.ragctl("backup")

    def ids(self) -> list[str]:
        return [r["id"] for r in json.loads(self.stack.ragctl("snapshots", "--json").stdout)]

    def forget_prune(self, ids: list[str]) -> dict:
        repo = Path(self.stack.repo_dir)
        self.stack.restart_controller()  # a fresh process: its peak RSS is that of forget + prune
        pid = self.stack.pids()["controller"]
        before = _dir_bytes(repo)
        t0 = time.monotonic()
        self.stack.ragctl("forget", *ids)
        prune = json.loads(self.stack.ragctl("prune", "--json").stdout)
        wall = time.monotonic() - t0
        jobs = json.loads(self.stack.ragctl("jobs", "--json").stdout)
        calls = []
        for _ in range(3):  # what one ragctl call costs with no work behind it (start-up, connect)
            t = time.monotonic()
            self.stack.ragctl("jobs", "--json")
            calls.append(time.monotonic() - t)
        return {"wall_s": round(wall, 2), "peak_rss": vm_hwm(pid), "repo_before": before,
                "repo_after": _dir_bytes(repo), "jobs_s": _job_seconds(jobs, ("forget", "prune")),
                "ragctl_call_s": round(sorted(calls)[1], 2),
                "plan": prune["plan"], "done": prune["done"]}

    def close(self) -> None:
        self.stack.stop()


def run(args: argparse.Namespace) -> dict:
    work = Path(args.data_dir)
    if work.exists():
        shutil.rmtree(work)
    src = work / "dataset"
    gen = dataset.generate(src, args.seed, args.scale)
    rag, restic = RagBackup(work, src), Restic(work)
    try:
        for k in range(BACKUPS):
            if k:
                dataset.mutate(src, args.seed + k, args.mutate_pct)
                time.sleep(1.05)  # rag-backup snapshot ids are per second
            rag.backup()
            restic.backup(src)
        ours = rag.forget_prune(rag.ids()[:FORGET])
        theirs = restic.forget_prune(restic.ids()[:FORGET])
    finally:
        rag.close()
    return {"scale": args.scale, "seed": args.seed, "mutate_pct": args.mutate_pct,
            "dataset_bytes": gen["total_bytes"], "ragbackup": ours, "restic": theirs,
            "restic_version": subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--mutate-pct", type=float, default=5.0)
    p.add_argument("--data-dir", default="/var/tmp/ragbench-prune")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    report = run(args)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"prune-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"{'tool':10} {'wall s':>8} {'peak RSS MiB':>13} {'repo before MiB':>16} {'after MiB':>10}")
    for tool in ("ragbackup", "restic"):
        r = report[tool]
        print(f"{tool:10} {r['wall_s']:8.2f} {r['peak_rss'] / 2**20:13.1f} {r['repo_before'] / 2**20:16.1f} "
              f"{r['repo_after'] / 2**20:10.1f}")
    print(f"rag-backup jobs (controller side, s): {report['ragbackup']['jobs_s']}")
    print(f"report: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
