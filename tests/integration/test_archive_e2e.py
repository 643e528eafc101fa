"""An archive tier through the real daemons, on moto (the server that models archive classes):
`ragctl archive` writes a self-contained set, lifecycle moves its packs to GLACIER, `ragctl
snapshots --tier` then shows the set as slower than the 1 h RTO, and `ragctl restore --from`
issues RestoreObject, waits for it and restores the snapshot byte for byte."""
from __future__ import annotations

import json
import time

import pytest

from ragbackup.localstack import LocalStack

from fixtures.motoserver import ACCESS_KEY, SECRET_KEY
from fixtures.stack import assert_same_tree, backup, build_tree, tree_state


@pytest.fixture
def archive_stack(moto_s3, tmp_path):
    creds = tmp_path / "s3.credentials"
    creds.write_text(f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    creds.chmod(0o600)
    bucket = moto_s3.make_bucket("archive")
    data = tmp_path / "data"
    build_tree(str(data), n_files=200, big_files=1)
    st = LocalStack(str(tmp_path / "stack"))
    st.add_paths_component("data", str(data))
    st.extra_toml = (f'[tiers.arch]\nkind = "archive"\nendpoint_url = "{moto_s3.endpoint_url}"\nbucket = "{bucket}"\n'
                     f'credentials = "{creds}"\n[tiers.arch.archive]\nrestore_poll = "1s"\nrestore_wait = "2m"\n')
    try:
        st.start()
        st.ragctl("init")
        yield st, bucket, str(data)
    finally:
        st.stop()
        print(f"--- controller.log (tail)\n{st.log_tail('controller', 30)}")


def _to_glacier(client, bucket: str) -> list[str]:
    """What the tier's lifecycle transition does after 30 days, done now: tagged packs move to GLACIER."""
    keys = []
    for obj in client.list_objects_v2(Bucket=bucket, Prefix="sets/")["Contents"]:
        tags = {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key=obj["Key"])["TagSet"]}
        if tags.get("rag-backup-object") == "pack":
            client.copy_object(Bucket=bucket, Key=obj["Key"], CopySource={"Bucket": bucket, "Key": obj["Key"]},
                               StorageClass="GLACIER", MetadataDirective="COPY", TaggingDirective="COPY")
            keys.append(obj["Key"])
    return keys


def test_a_set_in_glacier_is_shown_slower_than_the_rto_and_restores_after_restore_object(archive_stack, moto_s3,
                                                                                        tmp_path):
    st, bucket, data = archive_stack
    sid = backup(st)["id"]
    state = tree_state(data)
    shown = json.loads(st.ragctl("lifecycle", "show", "--tier", "arch", "--json").stdout)
    assert any(r["ID"] == "rag-backup-arch-archive-packs" for r in shown["rules"])
    st.ragctl("lifecycle", "apply", "--tier", "arch")
    client = moto_s3.client()
    stored = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert {r["ID"] for r in stored} >= {"rag-backup-arch-abort-uploads", "rag-backup-arch-archive-packs"}

    # replication after the backup writes the month's first set by itself; `ragctl archive` does it now
    # (or finds it written): either way, one set, for this snapshot
    written = json.loads(st.ragctl("archive", "--tier", "arch", sid, "--json").stdout)["tiers"]["arch"]
    assert [s["sid"] for s in written] in ([sid], [])
    fresh = json.loads(st.ragctl("snapshots", "--tier", "arch", "--json").stdout)
    assert [(r["id"], r["slower_than_rto"]) for r in fresh] == [(sid, False)]

    packs = _to_glacier(client, bucket)
    assert packs
    listed = st.ragctl("snapshots", "--tier", "arch")
    assert "3-5 h > RTO" in listed.stdout and "cannot be restored within the RTO of 1 h" in listed.stderr
    [row] = json.loads(st.ragctl("snapshots", "--tier", "arch", "--json").stdout)
    assert row["slower_than_rto"] and row["storage_classes"] == ["GLACIER"]

    dry = st.ragctl("restore", sid, "--from", "arch", "--target", str(tmp_path / "dry"), "--dry-run")
    assert "would wait 3-5 h" in dry.stdout + dry.stderr
    assert "Restore" not in client.head_object(Bucket=bucket, Key=packs[0])  # a dry run requests nothing
    st.ragctl("restore", sid, "--from", "arch", "--target", str(tmp_path / "r"))
    assert all('ongoing-request="false"' in client.head_object(Bucket=bucket, Key=k)["Restore"] for k in packs)
    assert_same_tree(state, str(tmp_path / "r" / "data"), "archived snapshot restored from GLACIER")


def test_the_runbooks_lifecycle_rule_is_refused_on_an_archive_tier(archive_stack, moto_s3, tmp_path):
    st, bucket, _ = archive_stack
    rules = tmp_path / "runbook-lifecycle.json"
    rules.write_text(json.dumps({"Rules": [{"ID": "runbook", "Status": "Enabled", "Filter": {"Prefix": ""},
                                            "Transitions": [{"Days": 30, "StorageClass": "GLACIER"},
                                                            {"Days": 90, "StorageClass": "DEEP_ARCHIVE"}],
                                            "Expiration": {"Days": 2555}}]}))
    cp = st.ragctl("lifecycle", "apply", "--tier", "arch", "--rules", str(rules), check=False)
    assert cp.returncode == 3 and "would break restores" in cp.stderr
    client = moto_s3.client()
    with pytest.raises(Exception):  # nothing was put on the bucket
        client.get_bucket_lifecycle_configuration(Bucket=bucket)


@pytest.mark.parametrize("argv, message", [
    (("forget", "--tier", "arch"), "forget does not apply to archive tier 'arch'"),
    (("prune", "--tier", "arch"), "prune does not apply to archive tier 'arch'"),
    (("drill", "latest", "--from", "arch"), "drill does not apply to archive tier 'arch'"),
    (("snapshots", "--tier", "arch", "--as-of", "2026-12-01T00:00:00Z"), "'arch' is an archive tier"),
])
def test_what_does_not_apply_to_an_archive_tier_says_so(archive_stack, argv, message):
    st, _, _ = archive_stack
    cp = st.ragctl(*argv, check=False)
    assert cp.returncode == 2 and message in cp.stderr, cp.stderr


def test_health_probes_an_archive_tier_for_its_sets(archive_stack):
    st, _, _ = archive_stack

    def tier_row() -> dict:
        [row] = json.loads(st.ragctl("health", "--json", check=False).stdout)["tiers"]
        return row

    empty = tier_row()
    assert empty["reachable"] and "no set yet" in empty["detail"], empty
    backup(st)  # the replication after it writes the month's first set by itself
    deadline = time.monotonic() + 60
    while "no set yet" in (written := tier_row())["detail"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert written["reachable"] and "no set yet" not in written["detail"], written
    assert "no repository yet" not in written["detail"], written
