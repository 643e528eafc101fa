"""Damaged repository metadata through the real daemons: index, snapshot and key objects.

In: a LocalStack (agent and controller as processes, a local repository) with two
snapshots. Out: a truncated index object is named by verify (warm and fresh
controllers) and blocks nothing on a fresh state_dir; `ragctl repair index` makes
verify pass; a deleted snapshot object and a damaged key object are named.
"""
from __future__ import annotations

import json
import os
import shutil

from fixtures.stack import assert_same_tree, backup, ragctl_output, tree_state, write


def _objects(st, prefix: str) -> set[str]:
    return set(os.listdir(os.path.join(st.repo_dir, prefix)))


def _fresh_controller(st, name: str) -> None:
    """Restart the controller with an empty state_dir (a new host after a disaster)."""
    st.stop_process("controller")
    shutil.move(st.state_dir, f"{st.state_dir}.{name}")
    st.start_controller()


def _two_snapshots(make_stack, tmp_path):
    """Snapshots A (component a) and B (component b), each with its own pack and index object."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        for i in range(3):
            write(str(d / f"part-{i}.bin"), os.urandom(200_000))
    st = make_stack({"a": str(a), "b": str(b)})
    sid_a = backup(st, "--components", "a")["id"]
    index_a = _objects(st, "index")
    sid_b = backup(st, "--components", "b")["id"]
    [index_b] = _objects(st, "index") - index_a
    return st, (a, sid_a), (b, sid_b), index_b


def test_truncated_index_object_is_named_blocks_nothing_and_repair_index_fixes_it(make_stack, tmp_path):
    st, (a, sid_a), (b, sid_b), index_b = _two_snapshots(make_stack, tmp_path)
    with open(os.path.join(st.repo_dir, "index", index_b), "r+b") as f:
        f.truncate(100)

    # a warm controller's cache still holds the entries: verify must read the object itself
    cp = st.ragctl("verify", check=False)
    assert cp.returncode == 6 and f"index/{index_b}" in cp.stdout, ragctl_output(cp)

    _fresh_controller(st, "before-damage")
    cp = st.ragctl("snapshots", "--json", check=False)
    assert cp.returncode == 0, ragctl_output(cp)
    assert [r["id"] for r in json.loads(cp.stdout)] == [sid_a, sid_b]
    assert f"index/{index_b}" in cp.stderr and "warning" in cp.stderr, ragctl_output(cp)
    for sid, src, comp in ((sid_a, a, "a"), (sid_b, b, "b")):  # B's blobs come from its pack's header
        target = str(tmp_path / f"restored-{comp}")
        cp = st.ragctl("restore", sid, "--target", target, check=False)
        assert cp.returncode == 0, ragctl_output(cp)
        assert_same_tree(tree_state(str(src)), os.path.join(target, comp), f"restore of {sid}")
    cp = st.ragctl("health", check=False)
    assert cp.returncode != 6, ragctl_output(cp)

    cp = st.ragctl("verify", check=False)
    assert cp.returncode == 6, ragctl_output(cp)
    assert f"index/{index_b}" in cp.stdout and "repair index" in cp.stdout, ragctl_output(cp)
    report = json.loads(st.ragctl("verify", "--json", check=False).stdout)
    assert list(report["damaged_index_objects"]) == [index_b], report
    assert list(report["affected_snapshots"]) == [sid_b], report

    cp = st.ragctl("catalog", "rebuild", check=False)
    assert cp.returncode == 0 and f"index/{index_b}" in cp.stderr, ragctl_output(cp)

    dry = json.loads(st.ragctl("repair", "index", "--dry-run", "--json").stdout)
    assert list(dry["damaged_index_objects"]) == [index_b] and dry["packs_described"] == 2, dry  # b's data and trees
    assert index_b in _objects(st, "index")
    cp = st.ragctl("repair", "index", check=False)
    assert cp.returncode == 0 and index_b in cp.stdout, ragctl_output(cp)
    assert index_b not in _objects(st, "index")
    cp = st.ragctl("verify", "--read-data", check=False)
    assert cp.returncode == 0, ragctl_output(cp)

    _fresh_controller(st, "after-repair")
    cp = st.ragctl("verify", "--read-data", check=False)
    assert cp.returncode == 0 and "repository OK" in cp.stdout, ragctl_output(cp)


def test_deleted_snapshot_object_is_noticed_by_snapshots_and_verify(make_stack, tmp_path):
    st, (_, sid_a), (_, sid_b), _ = _two_snapshots(make_stack, tmp_path)
    os.unlink(os.path.join(st.repo_dir, "snapshots", sid_a))
    cp = st.ragctl("snapshots", "--json", check=False)
    assert cp.returncode == 0 and [r["id"] for r in json.loads(cp.stdout)] == [sid_b], ragctl_output(cp)
    assert sid_a in cp.stderr and "vanished" in cp.stderr, ragctl_output(cp)
    cp = st.ragctl("verify", check=False)
    assert cp.returncode == 6 and sid_a in cp.stdout and "vanished" in cp.stdout, ragctl_output(cp)
    st.restart_controller()  # the catalog on disk remembers it
    cp = st.ragctl("verify", check=False)
    assert cp.returncode == 6 and sid_a in cp.stdout, ragctl_output(cp)
    cp = st.ragctl("catalog", "rebuild", check=False)
    assert cp.returncode == 0 and sid_a in cp.stderr, ragctl_output(cp)
    cp = st.ragctl("verify", check=False)
    assert cp.returncode == 0, ragctl_output(cp)

    # a damaged snapshot object on a fresh controller: left out with a warning, named by verify
    with open(os.path.join(st.repo_dir, "snapshots", sid_b), "r+b") as f:
        f.truncate(30)
    _fresh_controller(st, "damaged-snapshot")
    cp = st.ragctl("snapshots", "--json", check=False)
    assert cp.returncode == 0 and json.loads(cp.stdout) == [] and sid_b in cp.stderr, ragctl_output(cp)
    cp = st.ragctl("verify", check=False)
    assert cp.returncode == 6 and f"unreadable snapshot(s) {sid_b}" in cp.stdout, ragctl_output(cp)


def test_damaged_key_object_and_wrong_passphrase_are_told_apart(make_stack, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write(str(data / "doc.txt"), b"some document\n")
    st = make_stack({"data": str(data)})
    backup(st)
    [key] = _objects(st, "keys")
    path = os.path.join(st.repo_dir, "keys", key)
    with open(path, "rb") as f:
        good_key = f.read()

    with open(st.passphrase_file, "wb") as f:
        f.write(b"not the passphrase")
    st.restart_controller()
    cp = st.ragctl("snapshots", check=False)
    assert cp.returncode == 4, ragctl_output(cp)
    assert f"password file {st.passphrase_file}" in cp.stderr and "is damaged" not in cp.stderr, ragctl_output(cp)

    with open(path, "wb") as f:
        f.write(good_key[:len(good_key) // 2])
    cp = st.ragctl("snapshots", check=False)
    assert cp.returncode == 4, ragctl_output(cp)
    assert f"key object keys/{key} is damaged" in cp.stderr and "passphrase" not in cp.stderr, ragctl_output(cp)


def test_truncated_index_object_on_s3_is_recovered_and_repaired(make_stack, tmp_path, s3_server, s3_bucket):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        write(str(data / f"part-{i}.bin"), os.urandom(200_000))
    s3 = {"endpoint_url": s3_server.endpoint_url, "bucket": s3_bucket, "region": s3_server.region,
          "access_key_id": s3_server.access_key, "secret_access_key": s3_server.secret_key,
          "connect_timeout": 2, "read_timeout": 30.0}
    st = make_stack({"data": str(data)}, s3=s3)
    sid = backup(st)["id"]
    client = s3_server.client()
    [key] = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="index/")["Contents"]]
    body = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    client.put_object(Bucket=s3_bucket, Key=key, Body=body[:100])

    _fresh_controller(st, "s3")
    cp = st.ragctl("restore", sid, "--target", str(tmp_path / "restored"), check=False)
    assert cp.returncode == 0, ragctl_output(cp)
    assert_same_tree(tree_state(str(data)), str(tmp_path / "restored" / "data"), f"restore of {sid} from S3")
    cp = st.ragctl("verify", check=False)
    assert cp.returncode == 6 and key in cp.stdout and sid in cp.stdout, ragctl_output(cp)
    cp = st.ragctl("repair", "index", check=False)
    assert cp.returncode == 0, ragctl_output(cp)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="index/")["Contents"]]
    assert len(keys) == 1 and keys != [key], keys
    cp = st.ragctl("verify", "--read-data", check=False)
    assert cp.returncode == 0, ragctl_output(cp)
