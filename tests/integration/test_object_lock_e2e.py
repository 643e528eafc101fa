"""Object lock through the real daemons and a real SeaweedFS: a locked tier's snapshots survive an
attacker holding the controller's own credentials (deletes refused, overwrites and delete markers
undone by `restore --as-of`), and forget + prune on the locked tier succeed by adding delete markers."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from ragbackup.localstack import LocalStack

from fixtures.s3tiers import replicate_now
from fixtures.stack import assert_same_tree, backup, build_tree, change_tree, tree_state


def _tier_toml(s3_server, bucket: str, creds: str) -> str:
    return (f'[tiers.s3]\nendpoint_url = "{s3_server.endpoint_url}"\nbucket = "{bucket}"\n'
            f'credentials = "{creds}"\nconnect_timeout = 2\nread_timeout = 20\n'
            '[tiers.s3.object_lock]\ndays = 2\nmode = "COMPLIANCE"\n')


def _moment() -> str:
    """An ISO time strictly between what came before and what comes after, at S3's 1 s resolution."""
    time.sleep(1.2)
    when = dt.datetime.now(dt.timezone.utc).isoformat()
    time.sleep(1.2)
    return when


def _versions(client, bucket: str) -> tuple[set[str], int]:
    """(ids of the stored object versions, number of delete markers)."""
    ids, markers = set(), 0
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        ids |= {v["VersionId"] for v in page.get("Versions", ())}
        markers += len(page.get("DeleteMarkers", ()))
    return ids, markers


def _attack(client, bucket: str) -> int:
    """What ransomware with the controller's keys tries: delete versions, overwrite, delete. Returns refusals."""
    refused = 0
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", ())]
    for key in keys:
        version = client.head_object(Bucket=bucket, Key=key)["VersionId"]
        try:
            client.delete_object(Bucket=bucket, Key=key, VersionId=version)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDenied"
            refused += 1
        client.put_object(Bucket=bucket, Key=key, Body=b"encrypted by an attacker")
        client.delete_object(Bucket=bucket, Key=key)
    return refused


@pytest.fixture
def locked_stack(s3_server, tmp_path):
    creds = tmp_path / "s3.credentials"
    creds.write_text(f"[default]\naws_access_key_id = {s3_server.access_key}\n"
                     f"aws_secret_access_key = {s3_server.secret_key}\n")
    creds.chmod(0o600)
    bucket = f"locked-{uuid.uuid4().hex[:12]}"
    data = tmp_path / "data"
    build_tree(str(data), n_files=300, big_files=1)
    st = LocalStack(str(tmp_path / "stack"))
    st.add_paths_component("data", str(data))
    st.extra_toml = _tier_toml(s3_server, bucket, str(creds))
    try:
        st.start()
        st.ragctl("init")
        yield st, bucket, str(data)
    finally:
        st.stop()
        print(f"--- controller.log (tail)\n{st.log_tail('controller', 30)}")


def test_a_locked_tier_restores_every_snapshot_after_an_attack_and_prunes_with_markers(locked_stack, s3_server,
                                                                                      tmp_path):
    st, bucket, data = locked_stack
    out = st.ragctl("init", "--tier", "s3").stdout
    assert "created" in out and "object lock on" in out
    client = s3_server.client()
    conf = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert conf["ObjectLockEnabled"] == "Enabled" and "Rule" not in conf  # per object, never a bucket default
    st.ragctl("lifecycle", "apply", "--tier", "s3")
    rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["rag-backup-s3-noncurrent"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 3
    assert not any("Transitions" in r for r in rules.values())
    runbook = tmp_path / "runbook-lifecycle.json"
    runbook.write_text(json.dumps({"Rules": [{"ID": "runbook", "Status": "Enabled", "Filter": {"Prefix": ""},
                                              "Transitions": [{"Days": 30, "StorageClass": "GLACIER"},
                                                              {"Days": 90, "StorageClass": "DEEP_ARCHIVE"}],
                                              "Expiration": {"Days": 2555}}]}))
    shown = st.ragctl("lifecycle", "show", "--tier", "s3", "--rules", str(runbook), check=False)
    assert shown.returncode == 3
    assert "ERROR runbook: moves objects to GLACIER after 30 days on tier 's3', a deduplicated" in shown.stderr
    assert "ERROR runbook: expires current objects after 2555 days" in shown.stderr

    first = backup(st)["id"]
    state1 = tree_state(data)
    change_tree(data, n_files=300)
    second = backup(st)["id"]
    state2 = tree_state(data)
    cp = replicate_now(st, "--tier", "s3")
    assert cp.returncode == 0, cp.stderr
    listed = json.loads(st.ragctl("snapshots", "--tier", "s3", "--json").stdout)
    assert [r["id"] for r in listed] == [first, second]
    assert all(r["restore_wait"] == "minutes" and not r["slower_than_rto"] for r in listed)
    some = client.list_objects_v2(Bucket=bucket)["Contents"][0]["Key"]
    head = client.head_object(Bucket=bucket, Key=some)
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] > dt.datetime.now(
        dt.timezone.utc) + dt.timedelta(days=1)
    kept = json.loads(st.ragctl("lock", "maintain", "--tier", "s3", "--json").stdout)["tiers"]["s3"]
    assert kept["live"] > 0 and kept["extended"] == 0  # all written just now: nothing near its end

    before_prune = _moment()
    versions, _ = _versions(client, bucket)
    st.ragctl("forget", "--tier", "s3", first)
    pruned = st.ragctl("prune", "--tier", "s3", check=False)
    assert pruned.returncode == 0, pruned.stderr
    after, markers = _versions(client, bucket)
    assert versions <= after and markers > 0  # prune added delete markers and deleted no version

    before_attack = _moment()
    assert _attack(client, bucket) > 0
    gone = st.ragctl("restore", second, "--from", "s3", "--target", str(tmp_path / "nope"), check=False)
    assert gone.returncode != 0
    st.ragctl("restore", second, "--from", "s3", "--as-of", before_attack, "--target", str(tmp_path / "r2"))
    assert_same_tree(state2, str(tmp_path / "r2" / "data"), "second snapshot as of before the attack")
    st.ragctl("restore", first, "--from", "s3", "--as-of", before_prune, "--target", str(tmp_path / "r1"))
    assert_same_tree(state1, str(tmp_path / "r1" / "data"), "first snapshot as of before its prune")
    past = json.loads(st.ragctl("snapshots", "--tier", "s3", "--as-of", before_attack, "--json").stdout)
    assert [r["id"] for r in past] == [second]


def test_a_locked_tier_on_a_bucket_without_object_lock_stops_the_controller(s3_server, s3_bucket, tmp_path):
    creds = tmp_path / "s3.credentials"
    creds.write_text(f"[default]\naws_access_key_id = {s3_server.access_key}\n"
                     f"aws_secret_access_key = {s3_server.secret_key}\n")
    creds.chmod(0o600)
    st = LocalStack(str(tmp_path / "stack"))
    st.extra_toml = _tier_toml(s3_server, s3_bucket, str(creds))
    st.write_configs()
    cp = subprocess.run([sys.executable, "-m", "ragbackup.controller.serve", "--config", st.controller_config],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 3, cp.stderr
    assert "created without object lock" in cp.stderr
