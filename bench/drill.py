"""Drill benchmark: how long `ragctl drill latest` takes for the bench dataset, against the RTO.

In: --scale (1 = the 2.5 GB dataset), --seed, --data-dir (dataset cache and work area), --rto-target.
Out: a JSON report on stdout (and in --out): dataset size, backup time, the drill's total and
per-component seconds, its verdict and every check, and whether it beat the target (5 minutes).
The dataset's Redis is served by a throwaway redis-server and its Chroma by `chroma run`, both on
free 127.0.0.1 ports over work copies, so the backup captures them as live `redis` and `chroma`
components (facts included) and the drill checks them; every process is stopped by PID.

    .venv/bin/python -m bench.drill --scale 1
    .venv/bin/python -m bench.drill --scale 0.05 --data-dir /var/tmp/ragbench
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench import dataset
from bench.redis_proc import free_port, redis_server
from bench.run import _cached

PATHS_PARTS = ("documents", "config", "processing")


def _heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/v2/heartbeat", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def chroma_server(persist_dir: Path, log: Path, timeout: float = 300.0) -> Iterator[str]:
    """`chroma run` on `persist_dir` on a free loopback port; yields its URL; stopped by PID."""
    chroma = shutil.which("chroma") or os.path.join(os.path.dirname(sys.executable), "chroma")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "ab") as out:
        proc = subprocess.Popen([chroma, "run", "--path", str(persist_dir), "--host", "127.0.0.1", "--port",
                                 str(port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, ANONYMIZED_TELEMETRY="False"))
    try:
        deadline = time.monotonic() + timeout
        while not _heartbeat(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chroma did not start on {persist_dir} (see {log})")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _ragctl_json(stack, *args: str) -> tuple[dict, float]:
    began = time.monotonic()
    cp = stack.ragctl(*args, "--json", check=False)
    took = time.monotonic() - began
    if not cp.stdout.strip():
        raise RuntimeError(f"ragctl {' '.join(args)} exited {cp.returncode}: {cp.stderr[-2000:]}")
    return json.loads(cp.stdout), took


def run(ds: Path, work: Path, rto_target: float) -> dict:
    from ragbackup.localstack import LocalStack

    shutil.copytree(ds / "chroma", work / "chroma")
    shutil.copytree(ds / "redis", work / "redis")
    with redis_server(work / "redis") as rs, chroma_server(work / "chroma", work / "chroma.log") as url:
        stack = LocalStack(str(work / "stack"), agent_socket=True)
        for part in PATHS_PARTS:
            stack.add_paths_component(part, str(ds / part))
        stack.add_component("redis", "redis", str(rs.data_dir), port=rs.port, timeout_s=600)
        stack.add_component("chroma", "chroma", str(work / "chroma"), url=url, consistency="online", timeout_s=600)
        try:
            stack.start()
            stack.ragctl("init")
            backup, backup_s = _ragctl_json(stack, "backup")
            drill, wall_s = _ragctl_json(stack, "drill", "latest")
        finally:
            stack.stop()
    return {"snapshot": backup.get("id"), "backup_s": round(backup_s, 1), "drill_wall_s": round(wall_s, 1),
            "drill": drill, "rto_target_s": rto_target,
            "within_target": drill.get("result") == "SUCCESSFUL" and drill.get("duration_s", 1e9) <= rto_target}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.drill", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-dir", type=Path, default=Path("/var/tmp/ragbench"))
    p.add_argument("--rto-target", type=float, default=300.0, help="seconds the drill should beat (5 minutes)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    ds = args.data_dir / f"dataset-v{dataset.GENERATOR_VERSION}-seed{args.seed}-scale{args.scale:g}"
    info = _cached(ds, lambda p: dataset.generate(p, args.seed, args.scale))
    with tempfile.TemporaryDirectory(prefix="drill-bench-", dir=args.data_dir) as tmp:
        report = run(ds, Path(tmp), args.rto_target)
    report.update(scale=args.scale, dataset_bytes=info.get("total_bytes"), counts=info.get("counts"))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    d = report["drill"]
    print(f"drill of scale {args.scale:g} ({(info.get('total_bytes') or 0) / 1e9:.2f} GB): {d.get('result')} in "
          f"{d.get('duration_s')}s, target {args.rto_target:.0f}s: "
          f"{'met' if report['within_target'] else 'MISSED'}", file=sys.stderr)
    return 0 if report["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
