"""An S3 primary repository that stops answering (SIGSTOP) or dies (SIGKILL): every command that needs
it fails within the documented bound, exit 7, naming the endpoint; nothing hangs for minutes.

In: one SeaweedFS (fixtures.s3tiers own_weed, stopped by PID at the end) holding the primary
repository of a LocalStack with small [repository.s3] timeouts. Out: exit codes, messages and the
measured time of `ragctl backup` against `deadline + max_attempts x (connect_timeout + read_timeout)`.
"""
from __future__ import annotations

import time

from ragbackup import errors
from ragbackup.localstack import LocalStack

from fixtures.s3server import REGION
from fixtures.s3tiers import WeedServer
from fixtures.stack import backup, build_tree, ragctl_output

CONNECT_S, READ_S, ATTEMPTS, DEADLINE_S = 1, 2, 2, 4
# One operation (docs/OPERATIONS.md): no retry starts after DEADLINE_S, the try in flight then takes at most
# ATTEMPTS x (connect + read + 1 s waiting for "100 Continue" before an upload's body) plus botocore's backoff
# between its requests (< 3 s); the job's own work rides along.
OPERATION_BOUND_S = DEADLINE_S + ATTEMPTS * (CONNECT_S + READ_S + 1) + 3
COMMAND_BOUND_S = OPERATION_BOUND_S + 10



def _stack(tmp_path, weed: WeedServer) -> LocalStack:
    bucket = "primary-unreachable"
    weed.make_bucket(bucket)
    data = str(tmp_path / "data")
    build_tree(data, n_files=60, big_files=1)
    st = LocalStack(str(tmp_path / "stack"), s3={
        "endpoint_url": weed.endpoint_url, "bucket": bucket, "region": REGION,
        "access_key_id": weed.access_key, "secret_access_key": weed.secret_key,
        "connect_timeout": CONNECT_S, "read_timeout": READ_S, "max_attempts": ATTEMPTS, "deadline": DEADLINE_S})
    st.add_paths_component("data", data)
    return st


def _timed_backup(st: LocalStack):
    began = time.monotonic()
    cp = st.ragctl("backup", check=False, timeout=300)
    return cp, time.monotonic() - began


def test_an_unreachable_s3_primary_fails_within_the_bound_naming_the_endpoint(tmp_path, own_weed):
    st = _stack(tmp_path, own_weed)
    with st:
        st.ragctl("init")
        backup(st)
        for outage, stop, back in (("SIGSTOP", own_weed.pause, own_weed.resume), ("SIGKILL", own_weed.kill, own_weed.start)):
            (tmp_path / "data" / f"new-{outage}").write_bytes(outage.encode() * 50_000)
            stop()
            try:
                cp, took = _timed_backup(st)
            finally:
                back()
            print(f"{outage}: ragctl backup failed after {took:.1f}s (bound {COMMAND_BOUND_S}s): {cp.stderr.strip()}")
            assert cp.returncode == errors.StorageUnavailable.exit_code, ragctl_output(cp)
            assert own_weed.endpoint_url in cp.stderr and "[Errno None]" not in cp.stderr, ragctl_output(cp)
            assert took < COMMAND_BOUND_S, f"{outage}: took {took:.1f}s, bound {COMMAND_BOUND_S}s"
        sid = backup(st)["id"]  # the server is back: the next backup needs no one
        assert sid
