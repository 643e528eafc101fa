"""Forget and prune through the real daemons (local and SeaweedFS repositories).

In: LocalStacks (agent and controller as processes), datasets written here, a clock file
(RAG_BACKUP_CLOCK_FILE, read by the daemons' clock module) for a synthetic history.
Out: forget keeps exactly what the policy names; prune shrinks the repository to about
what the kept snapshots need, beside running backups and across SIGKILLs of the controller.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import random
import subprocess
import time
from typing import Iterator

import pytest
from ragbackup.localstack import LocalStack

from fixtures.stack import MiB, assert_same_tree, backup, ragctl_output, snapshot_ids, tree_state, write

UTC = dt.timezone.utc


@contextlib.contextmanager
def _stack(workdir: str, components: dict[str, str], extra_toml: str = "", s3: dict | None = None,
           pack_size_mib: int = 4) -> Iterator[LocalStack]:
    st = LocalStack(workdir, s3=s3)
    st.repository_options = {"pack_size_mib": pack_size_mib}
    st.extra_toml = extra_toml
    for name, path in components.items():
        st.add_paths_component(name, path)
    try:
        st.start()
        st.ragctl("init")
        yield st
    finally:
        st.stop()
        for proc in ("agent", "controller"):
            print(f"--- {st.workdir}/{proc}.log (tail)\n{st.log_tail(proc, 25)}")


def _set_clock(path: str, when: dt.datetime) -> None:
    with open(path + ".new", "w") as f:
        f.write(when.isoformat())
    os.replace(path + ".new", path)


def _json(st: LocalStack, *args: str) -> dict:
    cp = st.ragctl(*args, "--json", check=False)
    assert cp.returncode == 0, ragctl_output(cp)
    return json.loads(cp.stdout)


# --------------------------------------------------------------------------- forget on a 60-day history

def test_forget_dry_run_on_60_days_keeps_exactly_the_last_30(tmp_path, monkeypatch):
    clock_file = str(tmp_path / "clock")
    start = dt.datetime(2026, 9, 1, 2, 0, tzinfo=UTC)
    _set_clock(clock_file, start)
    monkeypatch.setenv("RAG_BACKUP_CLOCK_FILE", clock_file)
    data = tmp_path / "docs"
    data.mkdir()
    with _stack(str(tmp_path / "stack"), {"docs": str(data)}, '[retention]\nkeep_within = "30d"\n') as st:
        ids = []
        for day in range(60):
            _set_clock(clock_file, start + dt.timedelta(days=day))
            write(str(data / "today.txt"), f"day {day}\n".encode())
            ids.append(backup(st)["id"])
        assert ids[0] == "rag-system-backup-20260901_020000" and len(set(ids)) == 60
        now = start + dt.timedelta(days=59, hours=6)
        _set_clock(clock_file, now)
        d = _json(st, "forget", "--dry-run")
        verdicts = {s["id"]: s for s in d["snapshots"]}
        cutoff = now - dt.timedelta(days=30)
        expected = [sid for day, sid in enumerate(ids) if start + dt.timedelta(days=day) >= cutoff]
        assert sorted(s for s, v in verdicts.items() if v["keep"]) == sorted(expected)
        assert len(expected) == 30
        for sid in expected[:-1]:
            assert verdicts[sid]["reasons"] == ["within 30d"], verdicts[sid]
        assert verdicts[ids[-1]]["reasons"] == ["within 30d", "newest of component docs"]
        for sid in ids[:30]:
            assert verdicts[sid] == {**verdicts[sid], "keep": False, "reasons": ["no rule keeps it"]}
        assert snapshot_ids(st) == ids  # a dry run deletes nothing
        text = st.ragctl("forget", "--dry-run").stdout
        assert "within 30d" in text and "no rule keeps it" in text
        done = _json(st, "forget")
        assert done["forgotten"] == 30 and snapshot_ids(st) == expected
        jobs = st.ragctl("jobs", "--json", check=False)
        if jobs.returncode == 0:
            kinds = [j["kind"] for j in json.loads(jobs.stdout)]
            assert kinds.count("forget") == 3


# --------------------------------------------------------------------------- a changing dataset

FILES = 10
T0 = 1_700_000_000_000_000_000


def _versions(i: int) -> list[int]:
    """Which version of each file snapshot `i` holds: every snapshot rewrites files 0 and 1 (so a
    forgotten snapshot's versions of them are garbage), and one of the others in turn."""
    v = [0] * FILES
    for k in range(1, i + 1):
        for j in (0, 1, 2 + k % (FILES - 2)):
            v[j] = k
    return v


def _materialize(root: str, i: int, file_size: int, only_changed: bool = False) -> None:
    """Write the dataset as snapshot `i` holds it (deterministic bytes and mtimes)."""
    os.makedirs(root, exist_ok=True)
    prev = _versions(i - 1) if i else None
    for j, v in enumerate(_versions(i)):
        if only_changed and prev is not None and prev[j] == v:
            continue
        write(os.path.join(root, f"part-{j:02d}.bin"), random.Random(j * 1000 + v).randbytes(file_size),
              mtime_ns=T0 + v * 1_000_000_000 + j)


def _repo_bytes(st: LocalStack) -> int:
    staging = os.path.join(st.repo_dir, "tmp")
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(st.repo_dir) for f in fs
               if not d.startswith(staging))


def _restores_as(st: LocalStack, sid: str, expected, target: str) -> None:
    cp = st.ragctl("restore", sid, "--target", target, check=False)
    assert cp.returncode == 0, ragctl_output(cp)
    assert_same_tree(expected, os.path.join(target, "data"), f"restore of {sid}")


def _verify(st: LocalStack) -> dict:
    cp = st.ragctl("verify", "--read-data", "--json", check=False)
    assert cp.returncode == 0, ragctl_output(cp)
    return json.loads(cp.stdout)


def test_prune_after_forgetting_half_is_within_5pct_of_a_fresh_repository(tmp_path):
    # 10 files of 6 MiB here; RAG_BACKUP_PRUNE_FILE_MIB=100 makes it the 1 GB run (docs/PERFORMANCE.md)
    size = int(os.environ.get("RAG_BACKUP_PRUNE_FILE_MIB", "6")) * MiB
    data = str(tmp_path / "data")
    with _stack(str(tmp_path / "stack"), {"data": data}) as st:
        ids, states = [], {}
        for i in range(10):
            _materialize(data, i, size, only_changed=i > 0)
            ids.append(backup(st)["id"])
            states[ids[-1]] = tree_state(data)
            time.sleep(1.05)  # one snapshot id per second
        forget = ids[0:10:2]  # half: 0, 2, 4, 6, 8
        kept = [s for s in ids if s not in forget]
        d = _json(st, "forget", *forget)
        assert d["forgotten"] == 5 and snapshot_ids(st) == kept
        before = _repo_bytes(st)
        plan = _json(st, "prune", "--dry-run")["plan"]
        assert plan["delete_packs"] and plan["bytes_reclaimed"] > 0
        assert _repo_bytes(st) == before  # the dry run deleted nothing
        # packs more than 10% garbage are repacked (the default, 50, leaves more behind in mixed packs)
        out = _json(st, "prune", "--max-repack", "10")
        assert out["done"]["packs_deleted"] >= len(plan["delete_packs"])
        pruned = _repo_bytes(st)
        assert _verify(st)["ok"]
        for sid in kept:
            _restores_as(st, sid, states[sid], str(tmp_path / f"r-{sid}"))
        again = _json(st, "prune", "--dry-run")["plan"]
        assert again["delete_packs"] == [] and again["unindexed_packs"] == []
    fresh_data = str(tmp_path / "fresh-data")
    with _stack(str(tmp_path / "fresh"), {"data": fresh_data}) as fresh:
        for sid in kept:
            _materialize(fresh_data, ids.index(sid), size)
            backup(fresh)
            time.sleep(1.05)
        reference = _repo_bytes(fresh)
    print(f"\nrepository: {before} B before, {pruned} B after prune, fresh with the kept snapshots {reference} B "
          f"({100 * (pruned - reference) / reference:+.2f}%)")
    assert abs(pruned - reference) <= 0.05 * reference


# --------------------------------------------------------------------------- beside backups, across crashes

LOOPS = int(os.environ.get("RAG_BACKUP_PRUNE_LOOPS", "3"))  # 20 for the long run (docs/DESIGN.md)
SEED = int(os.environ.get("RAG_BACKUP_PRUNE_SEED", "17"))


def _start(st: LocalStack, *args: str) -> subprocess.Popen:
    return subprocess.Popen(st.ragctl_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, what: str) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}\nstdout: {out}\nstderr: {err}"
    return json.loads(out)


def _wait_for_job(st: LocalStack, kind: str, seen: int, timeout: float = 60) -> None:
    """Until the controller's audit log shows job start number `seen + 1` of `kind`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(os.path.join(st.workdir, "controller.log")) as f:
            if len(re.findall(rf"action=job-start .*outcome=started .*kind={kind} ", f.read())) > seen:
                return
        time.sleep(0.01)
    raise AssertionError(f"no {kind} job started within {timeout}s")


def _all_restore(st: LocalStack, states: dict, tmp_path, tag: str) -> None:
    remaining = snapshot_ids(st)
    assert set(remaining) <= set(states)
    for sid in remaining:
        _restores_as(st, sid, states[sid], str(tmp_path / f"{tag}-{sid}"))


def test_backups_and_prunes_overlapping_commit_complete_snapshots(tmp_path):
    rnd = random.Random(SEED)
    data = str(tmp_path / "data")
    size = 3 * MiB
    with _stack(str(tmp_path / "stack"), {"data": data}) as st:
        _materialize(data, 0, size)
        first = backup(st)["id"]
        states, iteration_of = {first: tree_state(data)}, {first: 0}
        for it in range(1, LOOPS + 1):
            time.sleep(1.05)
            snaps = snapshot_ids(st)
            _materialize(data, it, size, only_changed=True)
            if len(snaps) > 2:
                _json(st, "forget", snaps[0])
                # the backup brings back the forgotten snapshot's version of file 0: chunks that
                # are garbage to the prune and "already stored" to the backup
                old = iteration_of[snaps[0]]
                write(os.path.join(data, "part-00.bin"), random.Random(old).randbytes(size), mtime_ns=T0 + it)
            expected = tree_state(data)
            if it % 2:  # a backup that starts before the prune
                b = _start(st, "backup", "--json")
                time.sleep(rnd.uniform(0.0, 0.6))
                p = _start(st, "prune", "--max-repack", "0", "--json")
            else:  # one that starts while the prune runs
                p = _start(st, "prune", "--max-repack", "0", "--json")
                _wait_for_job(st, "prune", it // 2)
                b = _start(st, "backup", "--json")
            pruned = _finish(p, "prune")
            was_running = b.poll() is None
            made = _finish(b, "backup")
            states[made["id"]], iteration_of[made["id"]] = expected, it
            print(f"iteration {it}: backup {made['id']} {'still running' if was_running else 'done'} when prune "
                  f"ended; prune deleted {pruned['done']['packs_deleted']}, rescued {pruned['done']['packs_rescued']}")
        assert _verify(st)["ok"]
        _all_restore(st, states, tmp_path, "r")
        _json(st, "prune", "--max-repack", "0")
        plan = _json(st, "prune", "--dry-run", "--max-repack", "0")["plan"]
        assert (plan["delete_packs"], plan["repack_packs"], plan["unindexed_packs"]) == ([], [], [])
        assert _verify(st)["ok"]


def test_controller_killed_during_prune_loses_nothing_and_the_next_prune_finishes(tmp_path):
    rnd = random.Random(SEED)
    data = str(tmp_path / "data")
    size = 8 * MiB
    with _stack(str(tmp_path / "stack"), {"data": data}) as st:
        _materialize(data, 0, size)
        states = {backup(st)["id"]: tree_state(data)}
        killed_during = 0
        for it in range(1, LOOPS + 1):
            time.sleep(1.05)
            _materialize(data, it, size, only_changed=True)
            states[backup(st)["id"]] = tree_state(data)
            snaps = snapshot_ids(st)
            _json(st, "forget", snaps[0])
            p = _start(st, "prune", "--max-repack", "0", "--json")
            _wait_for_job(st, "prune", it - 1)  # the log is appended across restarts
            delay = rnd.uniform(0.0, 0.12)  # a prune here takes a tenth of a second or two
            time.sleep(delay)
            st.kill("controller")
            p.communicate(timeout=60)
            print(f"iteration {it}: controller killed {delay:.3f}s after the prune job started "
                  f"({'after it ended' if p.returncode == 0 else 'while it ran'})")
            killed_during += p.returncode != 0
            st.start_controller()
            _all_restore(st, states, tmp_path, f"r{it}")
        print(f"{killed_during} of {LOOPS} prunes killed while they ran")
        done = _json(st, "prune", "--max-repack", "0")
        plan = _json(st, "prune", "--dry-run", "--max-repack", "0")["plan"]
        assert (plan["delete_packs"], plan["repack_packs"], plan["unindexed_packs"]) == ([], [], []), done
        report = _verify(st)
        assert report["ok"] and report["garbage_packs"] == []
        _all_restore(st, states, tmp_path, "final")


@pytest.mark.s3
def test_forget_and_prune_on_s3(tmp_path, s3_server, s3_bucket):
    s3 = {"endpoint_url": s3_server.endpoint_url, "bucket": s3_bucket, "region": s3_server.region,
          "access_key_id": s3_server.access_key, "secret_access_key": s3_server.secret_key,
          "connect_timeout": 2, "read_timeout": 30.0}
    data = str(tmp_path / "data")
    size = 2 * MiB

    def data_keys() -> set[str]:
        pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, Prefix="data/")
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    with _stack(str(tmp_path / "stack"), {"data": data}, s3=s3) as st:
        states = {}
        for i in range(3):
            _materialize(data, i, size, only_changed=i > 0)
            states[backup(st)["id"]] = tree_state(data)
            time.sleep(1.05)
        ids = snapshot_ids(st)
        _json(st, "forget", ids[0], ids[1])
        before = data_keys()
        out = _json(st, "prune", "--max-repack", "0")
        gone = {f"data/{p[:2]}/{p}" for p in out["plan"]["delete_packs"] + out["plan"]["repack_packs"]}
        assert gone and gone <= before and not gone & data_keys()
        assert _verify(st)["ok"]
        _restores_as(st, ids[2], states[ids[2]], str(tmp_path / "r"))


def test_forget_and_prune_run_as_jobs_after_each_scheduled_backup(tmp_path):
    data = str(tmp_path / "data")
    toml = ("[retention]\nkeep_last = 1\nforget_after_backup = true\nprune_after_backup = true\n"
            '[schedule]\nincremental_every = "1m"\nmin_gap = "0s"\n')  # every firing is due
    with _stack(str(tmp_path / "stack"), {"data": data}, toml) as st:
        for i in range(3):
            _materialize(data, i, MiB, only_changed=i > 0)
            out = st.ragctl("backup", "--scheduled")
            made = [line for line in out.stdout.splitlines() if line.startswith("snapshot ")]
            assert len(made) == 1, out.stdout  # the stream's result stays the backup's
            assert "forget: forgot" in out.stderr and "prune: pruned" in out.stderr, out.stderr
            time.sleep(1.05)
        made = {"id": made[0].split()[1]}
        manual = backup(st)  # a manual backup runs neither
        assert snapshot_ids(st) == [made["id"], manual["id"]]
        jobs = json.loads(st.ragctl("jobs", "--json").stdout)
        kinds = [(j["kind"], j["trigger"], j["result"]) for j in jobs]
        assert kinds.count(("forget", "timer", "success")) == 3 and kinds.count(("prune", "timer", "success")) == 3
        assert _verify(st)["ok"]
        no_policy = st.ragctl("forget", "--dry-run", check=False)
        assert no_policy.returncode == 0  # keep_last is a policy


def test_forget_without_a_policy_is_a_usage_error(tmp_path):
    data = str(tmp_path / "data")
    with _stack(str(tmp_path / "stack"), {"data": data}) as st:
        _materialize(data, 0, MiB)
        backup(st)
        cp = st.ragctl("forget", check=False)
        assert cp.returncode == 2 and "no retention policy" in cp.stderr, ragctl_output(cp)
        cp = st.ragctl("forget", "rag-system-backup-20000101_000000", check=False)
        assert cp.returncode == 5, ragctl_output(cp)
        cp = st.ragctl("prune", "--max-repack", "150", check=False)
        assert cp.returncode == 2 and "--max-repack" in cp.stderr, ragctl_output(cp)
