"""Interrupted restores leave no `.NAME.restoring.STAMP` directories for good: the agent removes them at its
next start (kill -9 mid-restore) and before the next restore of the same component, and says so in its log.
Through the real daemons."""
from __future__ import annotations

import glob
import os
import subprocess
import time

from fixtures.stack import MiB, backup, write


def _staging_dirs(parent: str, name: str) -> list[str]:
    return glob.glob(os.path.join(parent, f".{name}.restoring.*"))


def test_a_restore_killed_mid_way_is_swept_at_the_next_agent_start(make_stack, tmp_path):
    data = tmp_path / "srv" / "docs"
    data.mkdir(parents=True)
    for i in range(24):
        write(str(data / f"d{i}.bin"), os.urandom(16 * MiB))
    st = make_stack({"docs": str(data)})
    sid = backup(st)["id"]
    argv = st.ragctl_argv("restore", sid, "--force")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _staging_dirs(str(data.parent), "docs") and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the restore ended before the kill"
        st.kill("agent")
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = _staging_dirs(str(data.parent), "docs")
    assert left, "the killed restore should have left its staging directory"
    st.start_agent()
    assert _staging_dirs(str(data.parent), "docs") == []
    assert f"removed {left[0]}" in st.log_tail("agent", 40)
    assert sorted(os.listdir(data)) == sorted(f"d{i}.bin" for i in range(24))  # the live data is untouched


def test_a_restore_removes_what_an_earlier_restore_of_the_component_left(make_stack, tmp_path):
    data = tmp_path / "srv" / "docs"
    data.mkdir(parents=True)
    write(str(data / "a.txt"), b"first\n")
    st = make_stack({"docs": str(data)})
    sid = backup(st)["id"]
    stale = data.parent / ".docs.restoring.20260101_000000"
    stale.mkdir()
    write(str(stale / "half.bin"), os.urandom(MiB))
    other = data.parent / ".notes.restoring.20260101_000000"  # another component's: not this restore's
    other.mkdir()
    write(str(other / "x"), b"x")
    st.ragctl("restore", sid, "--force")
    assert not stale.exists() and other.exists()
    assert f"removed {stale}" in st.log_tail("agent", 40)
    assert (data / "a.txt").read_bytes() == b"first\n"
