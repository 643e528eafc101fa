"""Acceptance tests of the backbone: the agent and controller as processes, driven by `ragctl`.

In: generated trees, a LocalStack per test (mTLS on loopback, a local or S3 repository).
Out: round trips restored byte for byte with metadata, dedup and wire numbers, refusals with
the documented exit codes, damage found by verify, and distinct ids for same-second backups.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest
from ragbackup.repo.snapshots import allocate_id, is_snapshot_id

from fixtures.stack import (
    MiB,
    assert_same_tree,
    backup,
    build_tree,
    change_tree,
    dir_usage,
    listing,
    ragctl_output,
    show,
    snapshot_ids,
    tree_state,
    write,
)


def restore_into(stack, sid: str, target: str, *args: str) -> None:
    stack.ragctl("restore", sid, "--target", target, *args)


# --------------------------------------------------------------------------- 1. round trip

def test_round_trip_restores_each_snapshot_as_it_was(make_stack, tmp_path):
    data = str(tmp_path / "data")
    build_tree(data, n_files=2400)
    st = make_stack({"data": data})
    before = tree_state(data)
    first = backup(st, "--reason", "first")
    changes = change_tree(data, n_files=2400)
    after = tree_state(data)
    changed = len(set(before.nodes.items()) ^ set(after.nodes.items()))
    print(f"\n{len(before.nodes)} entries; change touched {changed} entry states: " + "; ".join(changes))
    assert before != after and changed < 0.03 * len(before.nodes)
    second = backup(st, "--reason", "second")
    assert second["kind"] == "incremental", second
    assert second["components"]["data"]["stats"]["files_reused"] > 2000, second["components"]["data"]["stats"]

    for sid, expected, name in ((first["id"], before, "r1"), (second["id"], after, "r2")):
        target = str(tmp_path / name)
        restore_into(st, sid, target)
        assert_same_tree(expected, os.path.join(target, "data"), f"restore of {sid}")


# --------------------------------------------------------------------------- 2. unchanged data

def test_unchanged_backup_adds_and_sends_under_one_percent(make_stack, tmp_path):
    data = str(tmp_path / "data")
    build_tree(data, n_files=1500, big_files=8)
    st = make_stack({"data": data})
    first = backup(st)
    size = first["stats"]["bytes_total"]
    assert size > 10 * MiB, first["stats"]
    rows = []
    for mode in ("--incremental", "--full"):
        apparent0, disk0 = dir_usage(st.repo_dir)
        sid = backup(st, mode)["id"]
        s = show(st, sid)["stats"]
        apparent1, disk1 = dir_usage(st.repo_dir)
        row = (f"{mode[2:]}: data {size} B, read {s['bytes_read']}, sent {s['bytes_sent']} "
               f"({s['bytes_sent'] / size:.5%}), stored {s['bytes_stored']} ({s['bytes_stored'] / size:.5%}), "
               f"repository grew {apparent1 - apparent0} B apparent / {disk1 - disk0} B on disk "
               f"({(disk1 - disk0) / size:.5%})")
        rows.append(row)
        print("\n" + row)
        assert s["bytes_stored"] < 0.01 * size, row
        assert s["bytes_sent"] < 0.01 * size, row
        assert disk1 - disk0 < 0.01 * size and apparent1 - apparent0 < 0.01 * size, row
    assert "read 0," in rows[0], f"an incremental backup of unchanged files reads nothing: {rows[0]}"
    assert f"read {size}," in rows[1], f"--full re-reads everything: {rows[1]}"


# --------------------------------------------------------------------------- 3. insert in a big file

@pytest.mark.slow
def test_insert_in_middle_of_100mib_file_grows_repository_little(make_stack, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    big = data / "big.bin"
    blob = os.urandom(100 * MiB)
    big.write_bytes(blob)
    st = make_stack({"data": str(data)})
    backup(st)
    apparent0, disk0 = dir_usage(st.repo_dir)
    mid = len(blob) // 2
    big.write_bytes(blob[:mid] + os.urandom(100) + blob[mid:])
    second = backup(st)
    apparent1, disk1 = dir_usage(st.repo_dir)
    s = second["stats"]
    msg = (f"100 bytes inserted at {mid} of a {len(blob)} B file: repository grew {disk1 - disk0} B on disk "
           f"({apparent1 - apparent0} B apparent), backup read {s['bytes_read']}, sent {s['bytes_sent']}, "
           f"stored {s['bytes_stored']}")
    print("\n" + msg)
    assert disk1 - disk0 < 5 * MiB, msg
    assert apparent1 - apparent0 < 5 * MiB, msg
    assert s["bytes_sent"] < 5 * MiB, msg
    target = str(tmp_path / "restored")
    restore_into(st, second["id"], target)
    assert_same_tree(tree_state(str(data)), os.path.join(target, "data"), "restore after the insert")


# --------------------------------------------------------------------------- 4. S3 repository

@pytest.mark.s3
def test_round_trip_with_repository_on_s3(make_stack, tmp_path, s3_server, s3_bucket):
    data = str(tmp_path / "data")
    build_tree(data, n_files=400, big_files=2)
    s3 = {"endpoint_url": s3_server.endpoint_url, "bucket": s3_bucket, "region": s3_server.region,
          "access_key_id": s3_server.access_key, "secret_access_key": s3_server.secret_key,
          "connect_timeout": 2, "read_timeout": 30.0}  # numbers must reach the TOML as numbers
    st = make_stack({"data": data}, s3=s3)
    before = tree_state(data)
    first = backup(st)
    change_tree(data, n_files=400)
    after = tree_state(data)
    second = backup(st)
    for sid, expected, name in ((first["id"], before, "r1"), (second["id"], after, "r2")):
        target = str(tmp_path / name)
        restore_into(st, sid, target)
        assert_same_tree(expected, os.path.join(target, "data"), f"restore of {sid} from S3")
    verify = st.ragctl("verify", "--read-data", check=False)
    assert verify.returncode == 0, ragctl_output(verify)
    keys = [o["Key"] for page in s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
            for o in page.get("Contents", [])]
    tops = {k.split("/", 1)[0] for k in keys}
    assert {"config", "keys", "data", "index", "snapshots"} <= tops, sorted(keys)
    assert {f"snapshots/{first['id']}", f"snapshots/{second['id']}"} <= set(keys)
    assert not os.path.exists(st.repo_dir), "an S3 stack must not write a local repository"


# --------------------------------------------------------------------------- 5. wrong passphrase

def test_wrong_passphrase_is_refused_and_writes_nothing(make_stack, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "doc.txt").write_text("some document\n")
    st = make_stack({"data": str(data)})
    sid = backup(st)["id"]
    with open(st.passphrase_file, "rb") as f:
        good = f.read()
    before = listing(st.repo_dir)
    with open(st.passphrase_file, "wb") as f:
        f.write(b"not the passphrase")
    st.restart_controller()
    for verb in (["snapshots"], ["backup"], ["verify"], ["restore", "latest", "--target", str(tmp_path / "r")]):
        cp = st.ragctl(*verb, check=False)
        assert cp.returncode == 4, f"ragctl {verb[0]}: {ragctl_output(cp)}"
        assert "passphrase" in cp.stderr and "does not open" in cp.stderr, ragctl_output(cp)
    assert listing(st.repo_dir) == before, "a refused passphrase must not change the repository"
    assert not os.path.exists(tmp_path / "r" / "data")

    with open(st.passphrase_file, "wb") as f:
        f.write(good)
    st.restart_controller()
    assert snapshot_ids(st) == [sid]


# --------------------------------------------------------------------------- 6. flipped byte in a pack

def _flip_byte_in_a_blob(pack_path: str) -> int:
    """Flip one byte halfway through the blob area (between the magic and the sealed header)."""
    with open(pack_path, "r+b") as f:
        data = f.read()
        header_len = int.from_bytes(data[-12:-8], "little")
        blobs_end = len(data) - 12 - header_len
        offset = (8 + blobs_end) // 2
        f.seek(offset)
        f.write(bytes([data[offset] ^ 0x01]))
    return offset


def test_flipped_byte_is_found_by_verify_and_other_snapshots_still_restore(make_stack, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d, seed in ((a, 1), (b, 2)):
        d.mkdir()
        for i in range(3):
            write(str(d / f"part-{i}.bin"), os.urandom(300_000 + seed))
    st = make_stack({"a": str(a), "b": str(b)})
    packs = lambda: {os.path.join(dp, n) for dp, _, ns in os.walk(os.path.join(st.repo_dir, "data"))  # noqa: E731
                     for n in ns}
    sid_a = backup(st, "--components", "a")["id"]
    packs_a = packs()
    sid_b = backup(st, "--components", "b")["id"]
    assert len(packs_a) == 2 and len(packs() - packs_a) == 2, (packs_a, packs())  # each: its data, its trees
    pack = max(packs_a, key=os.path.getsize)  # a's data
    pack_id = os.path.basename(pack)
    offset = _flip_byte_in_a_blob(pack)

    cp = st.ragctl("verify", "--read-data", check=False)
    print(f"\nflipped byte {offset} of {pack_id}; verify --read-data said:\n{cp.stdout}{cp.stderr}")
    assert cp.returncode == 6, ragctl_output(cp)
    assert pack_id in cp.stdout, ragctl_output(cp)
    assert f"affected: {sid_a}" in cp.stdout and sid_b not in cp.stdout, ragctl_output(cp)
    report = json.loads(st.ragctl("verify", "--read-data", "--json", check=False).stdout)
    assert list(report["damaged_packs"]) == [pack_id], report
    assert list(report["affected_snapshots"]) == [sid_a], report

    target = str(tmp_path / "restored")
    restore_into(st, sid_b, target)
    assert_same_tree(tree_state(str(b)), os.path.join(target, "b"), f"restore of unaffected {sid_b}")
    cp = st.ragctl("restore", sid_a, "--target", str(tmp_path / "restored-a"), check=False)
    assert cp.returncode == 6 and pack_id in cp.stderr, ragctl_output(cp)


# --------------------------------------------------------------------------- 10. exit codes

def test_exit_codes_for_missing_repository_snapshot_and_controller(make_stack, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    st = make_stack({"data": str(data)}, init=False)
    cp = st.ragctl("snapshots", check=False)
    assert cp.returncode == 4 and "ragctl init" in cp.stderr, ragctl_output(cp)
    st.ragctl("init")
    cp = st.ragctl("init", check=False)
    assert cp.returncode == 4 and "already exists" in cp.stderr, ragctl_output(cp)
    for verb in (["show", "rag-system-backup-20000101_000000"],
                 ["restore", "rag-system-backup-20000101_000000", "--target", str(tmp_path / "r")],
                 ["restore", "latest", "--target", str(tmp_path / "r")]):
        cp = st.ragctl(*verb, check=False)
        assert cp.returncode == 5 and "no snapshot" in cp.stderr, f"ragctl {' '.join(verb)}: {ragctl_output(cp)}"
    cp = st.ragctl("backup", "--components", "nope", check=False)
    assert cp.returncode == 2 and "nope" in cp.stderr, ragctl_output(cp)

    cp = subprocess.run([sys.executable, "-m", "ragbackup.cli.main", "--socket", "/nonexistent", "snapshots"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 7, ragctl_output(cp)
    assert "cannot reach the controller" in cp.stderr and "/nonexistent" in cp.stderr, ragctl_output(cp)


# --------------------------------------------------------------------------- 11. same-second ids

@pytest.mark.parametrize("taken,expected", [
    ((), "rag-system-backup-20250102_030405"),
    (("rag-system-backup-20250102_030405",), "rag-system-backup-20250102_030405-2"),
    (("rag-system-backup-20250102_030405", "rag-system-backup-20250102_030405-2"),
     "rag-system-backup-20250102_030405-3"),
    (("rag-system-backup-20250102_030405", "rag-system-backup-20250102_030405-3"),
     "rag-system-backup-20250102_030405-2"),
    (("rag-system-backup-20250102_030404", "rag-system-backup-20250102_030406"),
     "rag-system-backup-20250102_030405"),
])
def test_allocate_id_is_unique_within_a_second(taken, expected):
    when = dt.datetime(2025, 1, 2, 3, 4, 5, 999_999, tzinfo=dt.timezone.utc)
    assert allocate_id(when, taken) == expected
    assert is_snapshot_id(expected)


def test_allocate_id_uses_utc():
    when = dt.datetime(2025, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert allocate_id(when, ()) == "rag-system-backup-20250102_030405"


def test_concurrent_backups_get_distinct_ids(make_stack, tmp_path):
    comps = {}
    for name in ("alpha", "beta"):
        d = tmp_path / name
        d.mkdir()
        write(str(d / "f.bin"), os.urandom(2 * MiB))
        comps[name] = str(d)
    st = make_stack(comps)
    all_ids: list[str] = []
    same_second = False
    for attempt in range(5):
        time.sleep(1.05 - time.time() % 1)  # start just after a second begins: both land inside it
        procs = [subprocess.Popen(st.ragctl_argv("backup", "--json", "--components", name),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in comps]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, f"exit {p.returncode}: {err}"
        ids = [json.loads(out)["id"] for out, _ in outs]
        print(f"\nattempt {attempt + 1}: concurrent backups got {ids}")
        assert len(set(ids)) == 2, ids
        all_ids += ids
        same_second = ids[0][:33] == ids[1][:33]
        if same_second:
            break
    assert same_second, f"never started two backups in the same second: {all_ids}"
    listed = snapshot_ids(st)
    assert sorted(listed) == sorted(all_ids), listed
    for sid in all_ids:
        assert len(show(st, sid)["components"]) == 1


def test_starting_a_running_stack_again_is_refused_and_leaves_no_daemon_behind(make_stack, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    stack = make_stack({"docs": str(data)}, init=False)
    before = stack.pids()
    with pytest.raises(RuntimeError, match="already running"):
        stack.start()
    assert stack.pids() == before  # the same two daemons, still tracked (and stopped at teardown)
