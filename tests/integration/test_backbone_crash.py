"""Acceptance tests of crash safety: SIGKILL of the agent or the controller in the middle of a backup.

In: a LocalStack, 300 MB of random data (shared by the module, read only), `ragctl backup`
started as a process and one daemon killed with SIGKILL once packs start to appear.
Out: ragctl fails, no snapshot is written for that run, verify passes, and after the daemon
is started again the next backup succeeds with no manual cleanup.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from fixtures.stack import MiB, backup, ragctl_output, snapshot_ids, write

pytestmark = pytest.mark.slow

BIG_FILES = 6
BIG_FILE_SIZE = 50 * MiB


@pytest.fixture(scope="module")
def big_data(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("big") / "big"
    d.mkdir()
    for i in range(BIG_FILES):
        write(str(d / f"vectors-{i}.bin"), os.urandom(BIG_FILE_SIZE))
    return str(d)


def _packs(stack) -> list[str]:
    return [n for _, _, names in os.walk(os.path.join(stack.repo_dir, "data")) for n in names]


def _backup_and_kill(stack, daemon: str) -> subprocess.CompletedProcess:
    """Start `ragctl backup --components big`, SIGKILL `daemon` once a pack lands (or after 3 s)."""
    argv = stack.ragctl_argv("backup", "--components", "big")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 3
        before = len(_packs(stack))
        while time.monotonic() < deadline and len(_packs(stack)) == before and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, f"the backup ended before the kill: {proc.communicate()}"
        print(f"\nkilling the {daemon} (pid {stack.pids()[daemon]}) with {len(_packs(stack)) - before} "
              "new pack(s) stored")
        stack.kill(daemon)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _leftovers(stack) -> dict[str, int]:
    """Temporary files an interrupted run left (pack staging, tree spools, agent cache), with sizes."""
    out = {}
    for root in (os.path.join(stack.repo_dir, "tmp"), os.path.join(stack.state_dir, "staging"),
                 os.path.join(stack.workdir, "agent-cache"), os.path.join(stack.workdir, "agent-staging")):
        for dirpath, _, names in os.walk(root):
            for n in names:
                p = os.path.join(dirpath, n)
                out[os.path.relpath(p, stack.workdir)] = os.path.getsize(p)
    return out


@pytest.mark.parametrize("daemon", ["agent", "controller"])
def test_sigkill_during_backup_leaves_no_snapshot_and_next_backup_works(make_stack, tmp_path, big_data, daemon):
    small = tmp_path / "small"
    small.mkdir()
    (small / "notes.txt").write_text("kept safe\n")
    st = make_stack({"small": str(small), "big": big_data})
    kept = backup(st, "--components", "small")["id"]

    cp = _backup_and_kill(st, daemon)
    print(f"ragctl backup after SIGKILL of the {daemon}: {ragctl_output(cp)}")
    assert cp.returncode == 7, ragctl_output(cp)
    assert ("agent" if daemon == "agent" else "controller") in cp.stderr, ragctl_output(cp)

    if daemon == "controller":
        st.start_controller()
    assert snapshot_ids(st) == [kept], "the interrupted run must not leave a snapshot"
    assert os.listdir(os.path.join(st.repo_dir, "snapshots")) == [kept]
    verify = st.ragctl("verify", check=False)
    print(f"verify: {ragctl_output(verify)}\nleft behind: {_leftovers(st)}")
    assert verify.returncode == 0, ragctl_output(verify)

    if daemon == "agent":
        st.start_agent()
    done = backup(st, "--components", "big")
    assert done["stats"]["bytes_total"] == BIG_FILES * BIG_FILE_SIZE, done["stats"]
    assert snapshot_ids(st) == [kept, done["id"]]
    verify = st.ragctl("verify", "--read-data", check=False)
    assert verify.returncode == 0, ragctl_output(verify)
