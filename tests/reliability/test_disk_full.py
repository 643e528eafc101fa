"""Full disks: the repository volume, the controller's state_dir, the agent's staging dir and a
restore target, each on a small tmpfs that fills up in the middle of a job, again and again.

In: a LocalStack whose directory under test is a size-limited tmpfs (mounted as root, always
unmounted), ballast that leaves less room than the job needs, then the ballast removed. Out,
every round: the job fails with the typed error and exit code of that volume (path and ENOSPC
named, no traceback), nothing half-written is visible (no snapshot, no partial restore), the
repository verifies, and the same job succeeds once space is freed; at the end every kept
snapshot restores byte-identical.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest
from fixtures.components_e2e import redis_client
from fixtures.stack import TreeState, ragctl_output
from ragbackup import errors

from reliability.common import backup_id, churn, fingerprint, restores_identical, seeded_tree, snapshots, verify
from reliability.conftest import size

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="tmpfs mounts need root")]

FILLS = size(fast=1, long=10)
MiB = 1024 * 1024
BALLAST = "ballast.bin"


@pytest.fixture
def small_fs() -> Iterator[Callable[[str, int], str]]:
    """Factory: small_fs(DIR, MiB) mounts a tmpfs of that size on DIR (created); unmounted at teardown."""
    mounted: list[str] = []

    def mount(path: str, mib: int) -> str:
        os.makedirs(path, exist_ok=True)
        cp = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", path],
                            capture_output=True, text=True)
        if cp.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {cp.stderr.strip()}")
        mounted.append(path)
        return path
    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", path], check=False, capture_output=True)


def fill(volume: str, leave: int) -> None:
    """Write ballast on `volume` until about `leave` bytes are free."""
    st = os.statvfs(volume)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(volume, BALLAST), "ab") as f:
        f.write(b"\0" * max(0, free - leave))


def free_space(volume: str) -> None:
    os.unlink(os.path.join(volume, BALLAST))


def assert_clear(st, cp, exit_code: int, volume: str | None) -> None:
    """The job failed with `exit_code`, naming ENOSPC and the volume's path (unless None), with no traceback."""
    out = ragctl_output(cp)
    assert cp.returncode == exit_code, out
    if volume is None:
        assert "no space left" in cp.stderr.lower(), out
    else:
        assert "(ENOSPC)" in cp.stderr and volume in cp.stderr, out
    assert "Traceback" not in cp.stdout + cp.stderr, out
    for proc in ("controller", "agent"):
        assert "Traceback" not in st.log_tail(proc, 400), f"{proc}.log:\n{st.log_tail(proc, 60)}"


def _backup_fills(st, data: str, volume: str, exit_code: int, change: Callable[[int], None],
                  record_property) -> dict[str, TreeState]:
    """FILLS rounds of: fill `volume`, change the data, backup fails; free it, backup succeeds, prune."""
    kept = {backup_id(st): fingerprint(data)}
    for n in range(1, FILLS + 1):
        fill(volume, leave=64 * 1024)
        change(n)
        before = snapshots(st)
        cp = st.ragctl("backup", check=False)
        assert_clear(st, cp, exit_code, volume)
        assert snapshots(st) == before, "the failed backup left a snapshot"
        verify(st)
        free_space(volume)
        kept[backup_id(st)] = fingerprint(data)
        st.ragctl("prune")  # what the failed backup stored is garbage: gone, so the volume does not fill for good
    verify(st, read_data=True)
    record_property("tries", FILLS)
    return kept


def test_repository_volume_fills_mid_backup(make_stack, small_fs, tmp_path, record_property):
    """the repository's volume fills up in the middle of a backup (exit 4), then space is freed"""
    data = str(tmp_path / "data")
    seeded_tree(data, 3)
    volume = small_fs(str(tmp_path / "stack" / "repository"), 24)
    st = make_stack({"docs": data})
    kept = _backup_fills(st, data, volume, errors.RepositoryError.exit_code, lambda n: churn(data, 3, n),
                         record_property)
    restores_identical(st, kept, "docs", str(tmp_path / "restores"))


def _many_files(data: str, n: int) -> None:
    """2000 small files: the tree the controller spools to its state_dir grows by about 1 MB."""
    d = os.path.join(data, f"many-{n}")
    os.makedirs(d)
    for i in range(2000):
        with open(os.path.join(d, f"note-{i:05d}-{'x' * 60}.txt"), "w") as f:
            f.write(f"{n}:{i}\n")


def test_state_dir_fills_mid_backup(make_stack, small_fs, tmp_path, record_property):
    """the controller's state_dir volume fills up in the middle of a backup (exit 3), then space is freed"""
    data = str(tmp_path / "data")
    seeded_tree(data, 4)
    volume = small_fs(str(tmp_path / "stack" / "controller-state"), 24)
    st = make_stack({"docs": data})
    kept = _backup_fills(st, data, volume, errors.StateError.exit_code, lambda n: _many_files(data, n),
                         record_property)
    restores_identical(st, kept, "docs", str(tmp_path / "restores"))


def test_agent_staging_fills_mid_capture(make_stack, small_fs, tmp_path, redis_server, record_property):
    """the agent's staging dir fills up while it copies a Redis dump for a backup, then space is freed"""
    client = redis_client(redis_server.port)
    volume = small_fs(str(tmp_path / "stack" / "agent-staging"), 16)
    st = make_stack({})
    st.add_component("cache", "redis", redis_server.data_dir, port=redis_server.port)

    def grow(n: int) -> None:
        """New values for the round (the dump keeps its size: the volume must only fill by the ballast)."""
        pipe = client.pipeline(transaction=False)
        for i in range(1500):
            pipe.delete(f"round-{n - 1}:{i}")
            pipe.set(f"round-{n}:{i}", os.urandom(1024))
        pipe.execute()
    grow(0)
    backup_id(st)
    for n in range(1, FILLS + 1):
        fill(volume, leave=256 * 1024)
        grow(n)
        before = snapshots(st)
        cp = st.ragctl("backup", check=False)
        assert_clear(st, cp, errors.NoSpace.exit_code, volume)
        assert snapshots(st) == before, "the failed backup left a snapshot"
        assert os.listdir(volume) == [BALLAST], f"scratch left in the staging dir: {os.listdir(volume)}"
        verify(st)
        free_space(volume)
        backup_id(st)
        st.ragctl("prune")
    verify(st, read_data=True)
    record_property("tries", FILLS)


def test_restore_target_fills_mid_restore(make_stack, small_fs, tmp_path, record_property):
    """the restore target's volume fills up in the middle of a restore, then space is freed"""
    data = str(tmp_path / "data")
    seeded_tree(data, 5)
    st = make_stack({"docs": data})
    sid = backup_id(st)
    expected = fingerprint(data)
    volume = small_fs(str(tmp_path / "target"), 12)
    for n in range(1, FILLS + 1):
        fill(volume, leave=512 * 1024)
        cp = st.ragctl("restore", sid, "--target", volume, check=False)
        assert_clear(st, cp, errors.NoSpace.exit_code, None)  # the agent's message names the size, not the path
        assert os.listdir(volume) == [BALLAST], f"a partial restore is visible: {os.listdir(volume)}"
        free_space(volume)
        st.ragctl("restore", sid, "--target", volume)
        assert fingerprint(os.path.join(volume, "docs")) == expected, f"round {n}: the restore differs"
        shutil.rmtree(os.path.join(volume, "docs"))
    verify(st)
    record_property("tries", FILLS)
