"""The replication copier against a real SeaweedFS: checked uploads, aborted multipart uploads, and a
damaged source pack that is never replicated.

In: the session's SeaweedFS (`s3_server`), fresh buckets, and for the last test two servers of
fixtures.s3tiers with a LocalStack. Out: what lands in the bucket, and what does not.
"""
from __future__ import annotations

import glob
import json
import os
import time

import pytest
from ragbackup import errors
from ragbackup.localstack import LocalStack
from ragbackup.storage.s3 import S3Storage

from fixtures.s3tiers import tier_toml
from fixtures.stack import backup, build_tree

MiB = 1024 * 1024


def test_put_checked_multipart_round_trip(s3_server, s3_bucket):
    s3 = S3Storage(s3_server.settings(s3_bucket))
    data = os.urandom(2 * MiB) * 10  # 20 MiB: three parts of 8 MiB
    s3.put_checked("data/ab/pack", data, part_size=8 * MiB)
    assert s3.get("data/ab/pack") == data
    small = b"x" * 1000
    s3.put_checked("snapshots/s", small)
    assert s3.get("snapshots/s") == small


def test_failed_multipart_upload_leaves_nothing(s3_server, s3_bucket):
    s3 = S3Storage(s3_server.settings(s3_bucket))
    calls = []

    def throttle(n: int) -> None:  # the second part's turn: the link goes down
        calls.append(n)
        if len(calls) == 2:
            raise errors.StorageUnavailable("link down")

    with pytest.raises(errors.StorageUnavailable):
        s3.put_checked("data/ab/pack", os.urandom(MiB) * 20, throttle, part_size=8 * MiB)
    client = s3_server.client()
    assert not s3.exists("data/ab/pack")
    assert not client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads"), "the multipart upload was not aborted"


def test_a_damaged_source_pack_is_never_replicated(tier_servers, tmp_path):
    a, _ = tier_servers
    data = str(tmp_path / "data")
    build_tree(data, n_files=100, big_files=1)
    st = LocalStack(str(tmp_path / "stack"))
    st.repository_options = {"pack_size_mib": 4}
    st.add_paths_component("data", data)
    try:
        st.start()
        st.ragctl("init")
        sid = backup(st)["id"]
        pack = max(glob.glob(os.path.join(st.repo_dir, "data", "*", "*")), key=os.path.getsize)
        with open(pack, "r+b") as f:  # one flipped byte inside the first blob
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0x01]))
        st.extra_toml = tier_toml(tmp_path / "stack", {"s3": {}}, {"s3": a})
        bucket = st.extra_toml.split('bucket = "', 1)[1].split('"', 1)[0]
        st.restart_controller()  # the catch-up starts by itself with the new tier
        cp = st.ragctl("replicate", "--tier", "s3", "--json", check=False)
        if cp.returncode == 8:  # the background catch-up holds the tier: wait for its record instead
            time.sleep(5)
            cp = st.ragctl("replicate", "--tier", "s3", "--json", check=False)
        assert cp.returncode == 6, cp.stderr
        assert "failed authentication" in cp.stderr and os.path.basename(pack) in cp.stderr, cp.stderr
        assert not [k for k in a.keys(bucket) if k.startswith("snapshots/")], "a snapshot reached the tier"
        status = json.loads(st.ragctl("status", "--json", check=False).stdout)
        row = status["replication"]["tiers"][0]
        assert row["queue_depth"] == 1 and "failed authentication" in row["last_error"], row
        assert sid
    finally:
        st.stop()
        print(f"--- controller.log (tail)\n{st.log_tail('controller', 20)}")


def test_bandwidth_limit_paces_uploads(s3_server, s3_bucket):
    from ragbackup.controller.replication import Throttle

    s3 = S3Storage(s3_server.settings(s3_bucket))
    data = os.urandom(MiB) * 12
    began = time.monotonic()
    s3.put_checked("data/ab/slow", data, Throttle(4 * MiB).take, part_size=5 * MiB)  # parts 5+5+2 MiB at 4 MiB/s
    took = time.monotonic() - began
    assert took >= 2.0, f"12 MiB at 4 MiB/s went up in {took:.1f}s"  # the first part goes at once
    assert s3.get("data/ab/slow") == data


def test_checked_uploads_send_an_unsigned_payload_the_server_still_checks(s3_server, s3_bucket):
    s3 = S3Storage(s3_server.settings(s3_bucket))
    sent: list[str] = []
    s3._unsigned().meta.events.register(
        "before-send.s3.*", lambda request, **_: sent.append(request.headers.get("x-amz-content-sha256", b"")))
    data = os.urandom(MiB) * 12
    s3.put_checked("data/ab/one", data[:MiB])  # one PUT
    s3.put_checked("data/ab/parts", data, part_size=5 * MiB)  # create, three parts, complete
    assert s3.get("data/ab/one") == data[:MiB] and s3.get("data/ab/parts") == data
    puts = [h for h in sent if h == b"UNSIGNED-PAYLOAD"]
    assert len(puts) >= 4, sent  # the body is hashed once, for the checksum header the signature covers
    with pytest.raises(errors.RagBackupError, match="BadDigest|XAmzContentSHA256Mismatch|InvalidDigest"):
        with s3._boundary("put", "data/ab/bad"):  # a body that is not what its checksum header says
            s3._unsigned().put_object(Bucket=s3_bucket, Key="data/ab/bad", Body=data[:MiB],
                                      ChecksumSHA256="A" * 43 + "=")
    assert not s3.exists("data/ab/bad")
