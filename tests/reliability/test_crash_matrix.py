"""The crash matrix: every named crash point (core/faults.py) hit with SIGKILL, through the real daemons.

In: a LocalStack (agent and controller processes, a local repository) and per try a seed that
picks the data and which pass of the point kills (N). Out, after each kill and a plain restart:
no snapshot from the killed job, `ragctl verify` passes, the same job run again succeeds with
no manual step, and at the end every kept snapshot restores byte-identical (verify --read-data
too); for the in-place swap, the live data is the old or the new tree, complete, and the other
is kept aside.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator

import pytest
from fixtures.s3tiers import tier_toml
from fixtures.stack import TreeState, assert_same_tree, ragctl_output
from ragbackup import faults

from reliability.common import (arm, backup_id, churn, died_at, disarm, fingerprint, restores_identical, seeded_tree,
                                snapshots, verify)
from reliability.conftest import size

pytestmark = pytest.mark.slow

TRIES = size(fast=1, long=5)
COMPONENT = "docs"


def _fresh(data: str, seed: int) -> None:
    shutil.rmtree(data, ignore_errors=True)
    seeded_tree(data, seed)


def _stored_snapshots(st) -> list[str]:
    return sorted(os.listdir(os.path.join(st.repo_dir, "snapshots")))


def _armed_tries(st, data: str, point: str, passes: int) -> Iterator[tuple[int, int]]:
    """(seed, N) per try: a fresh tree for the seed, the controller restarted with `point` armed for
    its Nth pass, N = 1 + seed % passes (the try's first N - 1 passes complete)."""
    for seed in range(1, TRIES + 1):
        _fresh(data, seed)
        n = 1 + seed % passes
        arm(st, "controller", point, n)
        yield seed, n


def _killed(st, proc: str, point: str, cp) -> None:
    """The job's daemon died at `point`, ragctl said the daemon went away (exit 7); start it again, disarmed."""
    assert died_at(st, proc, point), f"{proc} did not die at {point}: {ragctl_output(cp)}\n{st.log_tail(proc)}"
    assert cp.returncode == 7, ragctl_output(cp)
    disarm(st, proc)


def _backup_point(make_stack, tmp_path, record_property, point: str) -> None:
    data = str(tmp_path / "data")
    seeded_tree(data, 0)
    st = make_stack({COMPONENT: data})
    kept: dict[str, TreeState] = {}
    for seed, n in _armed_tries(st, data, point, 3):  # the Nth backup of the armed controller dies
        for step in range(n - 1):
            churn(data, seed, step)
            kept[backup_id(st, "--components", COMPONENT)] = fingerprint(data)
        churn(data, seed, n)
        before, stored = snapshots(st), _stored_snapshots(st)
        cp = st.ragctl("backup", "--components", COMPONENT, check=False)
        _killed(st, "controller", point, cp)
        assert snapshots(st) == before and _stored_snapshots(st) == stored, "the killed backup left a snapshot"
        verify(st)
        kept[backup_id(st, "--components", COMPONENT)] = fingerprint(data)
    restores_identical(st, kept, COMPONENT, str(tmp_path / "restores"))
    verify(st, read_data=True)
    record_property("tries", TRIES)
    record_property("detail", f"{len(kept)} kept snapshots restored byte-identical")


def test_kill_after_packs_before_index(make_stack, tmp_path, record_property):
    """kill -9 of the controller after a backup's packs are stored, before its index"""
    _backup_point(make_stack, tmp_path, record_property, "backup.after_packs")


def test_kill_after_index_before_snapshot(make_stack, tmp_path, record_property):
    """kill -9 of the controller after a backup's index is stored, before its snapshot"""
    _backup_point(make_stack, tmp_path, record_property, "backup.after_index")


def _garbage_cycle(st, data: str, seed: int, step: int, kept: dict[str, TreeState]) -> None:
    """Two backups kept around two that are forgotten: their packs become garbage for prune."""
    forget = []
    for k in range(4):
        churn(data, seed, step * 10 + k)
        sid = backup_id(st, "--components", COMPONENT)
        if k in (1, 2):
            forget.append(sid)
        else:
            kept[sid] = fingerprint(data)
    st.ragctl("forget", *forget)


def test_kill_mid_prune_delete(make_stack, tmp_path, record_property):
    """kill -9 of the controller in the middle of a prune's pack deletions"""
    data = str(tmp_path / "data")
    seeded_tree(data, 0)
    st = make_stack({COMPONENT: data})
    kept: dict[str, TreeState] = {}
    for seed, n in _armed_tries(st, data, "prune.mid_delete", 2):  # the Nth prune of the armed controller dies
        for step in range(n - 1):
            _garbage_cycle(st, data, seed, step, kept)
            st.ragctl("prune")
        _garbage_cycle(st, data, seed, n, kept)
        plan = json.loads(st.ragctl("prune", "--dry-run", "--json").stdout)
        cp = st.ragctl("prune", check=False)
        _killed(st, "controller", "prune.mid_delete", cp)
        assert sorted(snapshots(st)) == sorted(kept), "prune must not touch snapshots"
        verify(st)
        done = json.loads(st.ragctl("prune", "--json").stdout)  # finishes what the killed one began
        print(f"seed {seed}: plan {plan}\nnext prune {done}")
        verify(st)
    restores_identical(st, kept, COMPONENT, str(tmp_path / "restores"))
    verify(st, read_data=True)
    record_property("tries", TRIES)
    record_property("detail", f"{len(kept)} kept snapshots restored byte-identical")


def test_kill_mid_import(make_stack, tmp_path, record_property):
    """kill -9 of the controller in the middle of `ragctl import` (some members stored, no snapshot)"""
    data = str(tmp_path / "data")
    seeded_tree(data, 0)
    st = make_stack({COMPONENT: data})
    kept: dict[str, TreeState] = {}
    for seed in range(1, TRIES + 1):
        _fresh(data, seed)
        os.unlink(os.path.join(data, "links", "absolute"))  # import refuses absolute symlinks (exit 9)
        sid = backup_id(st, "--components", COMPONENT)
        kept[sid] = fingerprint(data)
        tarball = str(tmp_path / f"rag-system-backup-{seed}.tar.gz")
        st.ragctl("export", sid, "-o", tarball)
        n = 1 + (seed * 17) % 50  # the Nth member stored dies
        arm(st, "controller", "import.mid", n)
        before, stored = snapshots(st), _stored_snapshots(st)
        cp = st.ragctl("import", tarball, check=False)
        _killed(st, "controller", "import.mid", cp)
        assert snapshots(st) == before and _stored_snapshots(st) == stored, "the killed import left a snapshot"
        verify(st)
        cp = st.ragctl("import", tarball, "--json", check=False)
        assert cp.returncode == 0, ragctl_output(cp)
        assert len(snapshots(st)) == len(before) + 1
        kept[(set(snapshots(st)) - set(before)).pop()] = kept[sid]  # the import holds the exported tree
    restores_identical(st, kept, COMPONENT, str(tmp_path / "restores"))
    verify(st, read_data=True)
    record_property("tries", TRIES)


def _live_state(final: str, old: TreeState, new: TreeState) -> str:
    """'old' or 'new' for the tree at `final`; AssertionError when it is neither (or missing)."""
    assert os.path.isdir(final), f"{final} is missing after the interrupted swap"
    got = fingerprint(final)
    assert got in (old, new), f"{final} is neither the old nor the new tree:\n{new.diff(got)}"
    return "new" if got == new else "old"


def _kept_aside(parent: str, base: str, state: TreeState) -> bool:
    """The tree `state` is kept somewhere beside `base` (NAME.corrupted.* or the restore's staging dir)."""
    for name in os.listdir(parent):
        if name != base and base in name and os.path.isdir(os.path.join(parent, name)):
            if fingerprint(os.path.join(parent, name)) == state:
                return True
    return False


def _restore_killed_between_renames(st, tmp_path, kept: dict[str, TreeState], seed: int) -> tuple[str, TreeState, TreeState]:
    """One try: snapshot `new`, change the data (`old`), restore `new` in place with the Nth pass armed.

    Returns the snapshot restored, the old and the new tree; the agent was killed and started again.
    """
    parent, data = tmp_path / "live", str(tmp_path / "live" / COMPONENT)
    _fresh(data, seed)
    target = backup_id(st, "--components", COMPONENT)
    kept[target] = new = fingerprint(data)
    churn(data, seed, 1)
    kept[backup_id(st, "--components", COMPONENT)] = old = fingerprint(data)
    n = 1 + seed % 2  # the Nth in-place restore of the armed agent dies
    arm(st, "agent", "restore.between_renames", n)
    for _ in range(n - 1):  # passes that complete; the old tree is then put back by hand
        st.ragctl("restore", target)
        moved = [name for name in os.listdir(parent) if name.startswith(f"{COMPONENT}.corrupted.")]
        shutil.rmtree(data)
        os.rename(os.path.join(parent, max(moved, key=lambda m: os.stat(parent / m).st_ctime_ns)), data)
        assert fingerprint(data) == old
    before = snapshots(st)
    cp = st.ragctl("restore", target, check=False)
    _killed(st, "agent", "restore.between_renames", cp)
    assert snapshots(st) == before
    return target, old, new


def _in_place_stack(make_stack, tmp_path):
    (tmp_path / "live").mkdir()
    seeded_tree(str(tmp_path / "live" / COMPONENT), 0)
    return make_stack({COMPONENT: str(tmp_path / "live" / COMPONENT)})


def test_kill_between_renames_loses_nothing(make_stack, tmp_path, record_property):
    """kill -9 of the agent between the two renames of an in-place restore: nothing lost, the next restore needs no manual step"""
    st = _in_place_stack(make_stack, tmp_path)
    parent, data = tmp_path / "live", str(tmp_path / "live" / COMPONENT)
    kept: dict[str, TreeState] = {}
    for seed in range(1, TRIES + 1):
        target, old, new = _restore_killed_between_renames(st, tmp_path, kept, seed)
        live = fingerprint(data) if os.path.isdir(data) else None
        assert live in (old, new, None), "the live path holds a partial tree"
        assert live == old or _kept_aside(str(parent), COMPONENT, old), "the old tree is neither live nor kept aside"
        verify(st)
        st.ragctl("restore", target)
        assert fingerprint(data) == new
    restores_identical(st, kept, COMPONENT, str(tmp_path / "restores"))
    record_property("tries", TRIES)


def test_kill_between_renames_keeps_live_data(make_stack, tmp_path, record_property):
    """kill -9 of the agent between the two renames of an in-place restore: the live data is the old or the new tree, the other kept aside"""
    st = _in_place_stack(make_stack, tmp_path)
    parent, data = tmp_path / "live", str(tmp_path / "live" / COMPONENT)
    kept: dict[str, TreeState] = {}
    record_property("tries", TRIES)
    for seed in range(1, TRIES + 1):
        target, old, new = _restore_killed_between_renames(st, tmp_path, kept, seed)
        outcome = _live_state(data, old, new)
        assert _kept_aside(str(parent), COMPONENT, old if outcome == "new" else new), \
            f"the {outcome} tree is live, the other is not kept"
        st.ragctl("restore", target)


TIER_BUCKET = "crash-matrix"
REPLICATED_WITHIN = 120.0  # seconds for a restarted controller's catch-up of a few small snapshots


def _tier_snapshots(server) -> set[str]:
    """Snapshot ids whose object is on the tier, read from the bucket itself (the controller may be dead)."""
    return {key.rsplit("/", 1)[1] for key in server.keys(TIER_BUCKET) if key.split("/")[-2:-1] == ["snapshots"]}


def _replicated(st, server, sid: str) -> None:
    """Wait until snapshot `sid` is on the tier (the background replication after each backup)."""
    deadline = time.monotonic() + REPLICATED_WITHIN
    while sid not in _tier_snapshots(server):
        assert time.monotonic() < deadline, f"{sid} not on the tier within {REPLICATED_WITHIN}s\n" \
                                            f"{st.log_tail('controller', 30)}"
        time.sleep(0.5)


def _interrupted_replications(st) -> int:
    jobs = json.loads(st.ragctl("jobs", "--kind", "replicate", "--json").stdout)
    return sum(1 for j in jobs if j["result"] == "interrupted")


def test_kill_mid_replication(make_stack, own_weed, tmp_path, record_property):
    """kill -9 of the controller in the middle of a replication to an S3 tier (packs and index copied, no snapshot)"""
    data = str(tmp_path / "data")
    seeded_tree(data, 0)
    st = make_stack({COMPONENT: data}, extra_toml=tier_toml(tmp_path / "tiers", {"s3": {"bucket": TIER_BUCKET}},
                                                            {"s3": own_weed}))
    kept: dict[str, TreeState] = {}
    for seed, n in _armed_tries(st, data, "replicate.mid", 2):  # the Nth snapshot replicated dies
        for step in range(n - 1):
            churn(data, seed, step)
            sid = backup_id(st, "--components", COMPONENT)
            kept[sid] = fingerprint(data)
            _replicated(st, own_weed, sid)
        churn(data, seed, n)
        sid = backup_id(st, "--components", COMPONENT)  # stored locally; its replication dies
        kept[sid] = fingerprint(data)
        assert died_at(st, "controller", "replicate.mid", timeout=REPLICATED_WITHIN), \
            f"the controller did not die at replicate.mid\n{st.log_tail('controller')}"
        assert sid not in _tier_snapshots(own_weed), "the killed replication left its snapshot on the tier"
        disarm(st, "controller")
        _replicated(st, own_weed, sid)  # the restarted controller catches up by itself
        assert _interrupted_replications(st) >= seed, "the killed replication is not in the job history"
        verify(st)
    for sid, expected in sorted(kept.items()):  # every snapshot restores from the tier alone
        target = str(tmp_path / "restores" / sid)
        cp = st.ragctl("restore", sid, "--target", target, "--components", COMPONENT, "--from", "s3", check=False)
        assert cp.returncode == 0, f"restore of {sid} from the tier failed: {ragctl_output(cp)}"
        assert_same_tree(expected, os.path.join(target, COMPONENT), f"snapshot {sid} from the tier")
    verify(st, read_data=True)
    record_property("tries", TRIES)
    record_property("detail", f"{len(kept)} snapshots restored byte-identical from the tier alone")


def test_every_crash_point_is_in_the_matrix():
    """every named crash point has a case in the crash matrix"""
    source = open(__file__).read()
    missing = [name for name in faults.KNOWN if f'"{name}"' not in source]
    assert not missing, f"crash points with no case: {missing}"
