"""Concurrency: jobs that meet while a backup runs, through the real daemons.

In: a LocalStack whose repository writes are slowed (FaultyStorage) so a backup is
reliably still running when a second `ragctl` arrives (the first slowed write is the
signal). Out: where two jobs would touch the same component, the first wins and the
second exits 8 (busy) naming the holder; where they safely can (other components, an
import, a prune, readers), both succeed; the backup's snapshot restores byte-identical
and the repository verifies.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from fixtures.stack import TreeState, assert_same_tree, ragctl_output
from ragbackup import errors

from reliability.common import (backup_id, churn, fingerprint, restores_identical, seeded_tree, snapshots,
                                storage_faults, verify, wrap_storage)
from reliability.conftest import size

pytestmark = pytest.mark.slow

TRIES = size(fast=1, long=5)
SLOW_S = 2.0  # each of the running backup's first pack writes


@pytest.fixture
def stack(make_stack, tmp_path):
    """A stack with components `docs` and `notes`, storage writes slowed on demand."""
    docs, notes = str(tmp_path / "docs"), str(tmp_path / "notes")
    seeded_tree(docs, 11)
    seeded_tree(notes, 12)
    st = make_stack({"docs": docs, "notes": notes})
    rules = str(tmp_path / "faults.json")
    wrap_storage(st, rules)
    return st, {"docs": docs, "notes": notes}, rules


def _await_first_fault(proc: subprocess.Popen, rules: str, job: str, point: str) -> None:
    """Wait (60 s at most) until the storage fault rules in `rules` were first hit by `proc`'s `job`."""
    deadline = time.monotonic() + 60
    while not os.path.exists(rules + ".hits") and time.monotonic() < deadline:
        assert proc.poll() is None, f"the {job} ended early: {proc.communicate()}"
        time.sleep(0.02)
    assert os.path.exists(rules + ".hits"), f"the {job} never reached {point}"


@contextmanager
def running_backup(st, rules: str, *args: str) -> Iterator[subprocess.Popen]:
    """`ragctl backup ARGS` started and known to be running (its first pack write is held SLOW_S)."""
    if os.path.exists(rules + ".hits"):
        os.unlink(rules + ".hits")
    storage_faults(st, rules, [{"ops": ["write"], "prefix": "data/", "times": 1, "fault": "slow", "delay_s": SLOW_S}])
    proc = subprocess.Popen(st.ragctl_argv("backup", "--json", *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _await_first_fault(proc, rules, "backup", "its first pack write")
        yield proc
    finally:
        if proc.poll() is None:
            proc.wait(120)
        storage_faults(st, rules, [])


def finished(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"the running backup failed: exit {proc.returncode}\n{err}"
    return json.loads(out)


def assert_busy(cp, holder: str) -> None:
    """Exit 8 naming the lock and the job holding it."""
    assert cp.returncode == errors.LockBusy.exit_code, ragctl_output(cp)
    assert "held by" in cp.stderr and holder in cp.stderr, ragctl_output(cp)


def test_two_backups_of_the_same_component(stack, record_property):
    """two backups of the same component at once: the first wins, the second exits 8 naming the holder"""
    st, dirs, rules = stack
    for n in range(TRIES):
        churn(dirs["docs"], 11, n)
        with running_backup(st, rules, "--components", "docs") as first:
            second = st.ragctl("backup", "--components", "docs", check=False)
            assert_busy(second, "backup rag-system-backup-")
        finished(first)
    verify(st)
    record_property("tries", TRIES)
    record_property("detail", "second backup: exit 8, holder named")


def test_two_backups_of_different_components(stack, tmp_path, record_property):
    """two backups of different components at once: both succeed"""
    st, dirs, rules = stack
    kept: dict[str, TreeState] = {}
    for n in range(TRIES):
        churn(dirs["docs"], 11, n)
        churn(dirs["notes"], 12, n)
        with running_backup(st, rules, "--components", "docs") as first:
            second = st.ragctl("backup", "--json", "--components", "notes", check=False)
            assert second.returncode == 0, ragctl_output(second)
            kept_notes = json.loads(second.stdout)["id"]
        kept[finished(first)["id"]] = fingerprint(dirs["docs"])
        restores_identical(st, {kept_notes: fingerprint(dirs["notes"])}, "notes", str(tmp_path / f"r-notes-{n}"))
    restores_identical(st, kept, "docs", str(tmp_path / "restores"))
    verify(st, read_data=True)
    record_property("tries", TRIES)


def test_restore_while_a_backup_of_the_component_runs(stack, tmp_path, record_property):
    """an in-place restore of a component while a backup of it runs: the backup wins, the restore exits 8 naming it; the data is untouched"""
    st, dirs, rules = stack
    sid = backup_id(st, "--components", "docs")
    for n in range(TRIES):
        churn(dirs["docs"], 11, n)
        live = fingerprint(dirs["docs"])
        with running_backup(st, rules, "--components", "docs") as first:
            cp = st.ragctl("restore", sid, "--components", "docs", check=False)
            assert_busy(cp, "backup rag-system-backup-")
        done = finished(first)
        assert fingerprint(dirs["docs"]) == live, "the refused restore changed the live data"
        restores_identical(st, {done["id"]: live}, "docs", str(tmp_path / f"r-{n}"))
    record_property("tries", TRIES)


def test_import_during_a_backup(stack, tmp_path, record_property):
    """`ragctl import` while a backup runs: both succeed"""
    st, dirs, rules = stack
    os.unlink(os.path.join(dirs["notes"], "links", "absolute"))  # import refuses absolute symlinks (exit 9)
    sid = backup_id(st, "--components", "notes")
    notes = fingerprint(dirs["notes"])
    tarball = str(tmp_path / "rag-system-backup-notes.tar.gz")
    st.ragctl("export", sid, "-o", tarball)
    kept = {sid: notes}
    for n in range(TRIES):
        churn(dirs["docs"], 11, n)
        before = set(snapshots(st))
        with running_backup(st, rules, "--components", "docs") as first:
            cp = st.ragctl("import", tarball, check=False)
            assert cp.returncode == 0, ragctl_output(cp)
        done = finished(first)
        imported = set(snapshots(st)) - before - {done["id"]}
        assert len(imported) == 1, f"new snapshots: {set(snapshots(st)) - before}"
        kept[imported.pop()] = notes
        restores_identical(st, {done["id"]: fingerprint(dirs["docs"])}, "docs", str(tmp_path / f"r-{n}"))
    restores_identical(st, kept, "notes", str(tmp_path / "restores"))
    verify(st, read_data=True)
    record_property("tries", TRIES)


def test_prune_during_a_backup(stack, tmp_path, record_property):
    """forget and prune while a backup runs: both succeed, the running backup's snapshot restores byte-identical"""
    st, dirs, rules = stack
    kept: dict[str, TreeState] = {}
    for n in range(TRIES):
        doomed = []
        for k in range(2):
            churn(dirs["docs"], 11, 100 * n + k)
            doomed.append(backup_id(st, "--components", "docs"))
        st.ragctl("forget", *doomed)
        churn(dirs["docs"], 11, 100 * n + 50)
        with running_backup(st, rules, "--components", "docs") as first:
            cp = st.ragctl("prune", "--json", check=False)
            assert cp.returncode == 0, ragctl_output(cp)
            print(f"prune during the backup: {cp.stdout.strip()}")
        kept[finished(first)["id"]] = fingerprint(dirs["docs"])
        verify(st)
    restores_identical(st, kept, "docs", str(tmp_path / "restores"))
    verify(st, read_data=True)
    record_property("tries", TRIES)


def test_many_clients_during_a_backup(stack, record_property):
    """20 `ragctl jobs --json` and `ragctl snapshots --json` at once while a backup runs: all answer, the backup succeeds"""
    st, dirs, rules = stack
    clients = 20
    measured = []
    for n in range(TRIES):
        churn(dirs["docs"], 11, n)
        with running_backup(st, rules, "--components", "docs") as first:
            start = time.monotonic()
            with ThreadPoolExecutor(clients) as pool:
                verbs = [("jobs", "--json") if i % 2 else ("snapshots", "--json") for i in range(clients)]
                results = list(pool.map(lambda argv: st.ragctl(*argv, check=False, timeout=120), verbs))
            measured.append(time.monotonic() - start)
            for cp in results:
                assert cp.returncode == 0, ragctl_output(cp)
                json.loads(cp.stdout)
        finished(first)
    verify(st)
    record_property("tries", TRIES)
    record_property("bound_s", 60)
    record_property("measured_s", round(max(measured), 1))
    record_property("detail", f"{clients} clients in parallel")


@contextmanager
def running_restore(st, rules: str, sid: str, target: str, delay_s: float) -> Iterator[subprocess.Popen]:
    """`ragctl restore SID --target TARGET` started and known to be reading packs (each pack read held `delay_s`)."""
    if os.path.exists(rules + ".hits"):
        os.unlink(rules + ".hits")
    storage_faults(st, rules, [{"ops": ["read"], "prefix": "data/", "fault": "slow", "delay_s": delay_s}])
    proc = subprocess.Popen(st.ragctl_argv("restore", sid, "--components", "docs", "--target", target),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _await_first_fault(proc, rules, "restore", "a pack read")
        yield proc
    finally:
        storage_faults(st, rules, [])
        if proc.poll() is None:
            proc.wait(300)


def _doomed_and_kept(st, docs: str, n: int) -> str:
    """Two snapshots of `docs`, the first forgotten: its packs hold both garbage and blobs the second needs."""
    churn(docs, 11, 100 * n)
    doomed = backup_id(st, "--components", "docs")
    churn(docs, 11, 100 * n + 1)
    kept = backup_id(st, "--components", "docs")
    st.ragctl("forget", doomed)
    return kept


@pytest.mark.parametrize("wait_s,outcome", [(1, "deferred"), (300, "waited")])
def test_prune_during_a_restore(make_stack, tmp_path, record_property, wait_s, outcome):
    """prune (repacking every pack with garbage) while a restore reads those packs: the restore succeeds byte-identical;
    prune waits for it up to [retention] reader_wait, and what it could not delete goes at the next prune"""
    docs = str(tmp_path / "docs")
    seeded_tree(docs, 11)
    st = make_stack({"docs": docs})
    st.extra_toml = f"[retention]\nreader_wait = {wait_s}\n"
    rules = str(tmp_path / "faults.json")
    wrap_storage(st, rules)
    kept: dict[str, TreeState] = {}
    for n in range(TRIES):
        sid = _doomed_and_kept(st, docs, n)
        kept[sid] = fingerprint(docs)
        target = str(tmp_path / f"r-{n}")
        with running_restore(st, rules, sid, target, delay_s=0.4) as restore:
            cp = st.ragctl("prune", "--max-repack", "0", "--json", check=False)
            assert cp.returncode == 0, ragctl_output(cp)
            done = json.loads(cp.stdout)["done"]
            print(f"prune during the restore ({outcome}): {json.dumps(done)}")
            out, err = restore.communicate(timeout=300)
            assert restore.returncode == 0, f"the restore failed beside the prune: exit {restore.returncode}\n{err}"
        assert_same_tree(kept[sid], os.path.join(target, "docs"), f"snapshot {sid} restored beside the prune")
        assert done["packs_repacked"] >= 1, done
        if outcome == "deferred":
            assert done["packs_deferred"] >= 1 and "restore job" in " ".join(done["deferred_for"]), done
            again = json.loads(st.ragctl("prune", "--json").stdout)["done"]
            assert again["packs_deleted"] >= done["packs_deferred"] and again["packs_deferred"] == 0, again
        else:
            assert done["packs_deferred"] == 0 and done["packs_deleted"] >= 1, done
        verify(st)
    restores_identical(st, kept, "docs", str(tmp_path / "restores"))
    verify(st, read_data=True)
    record_property("tries", TRIES)
