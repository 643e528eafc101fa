"""Job records through the real daemons: `ragctl jobs` after a session of backups, restores,
verify, export, import, a failure (agent down) and a controller killed with SIGKILL mid-backup.

In: a LocalStack with one `paths` component. Out: every job listed once with its kind,
trigger, caller, times, result and byte counts; the killed one `interrupted` after the restart.
"""
from __future__ import annotations

import json
import os
import pwd
import sqlite3
import subprocess
import time

import pytest

from fixtures.stack import MiB, backup, ragctl_output, write

pytestmark = pytest.mark.slow


def _jobs(stack, *args: str) -> list[dict]:
    return json.loads(stack.ragctl("jobs", "--json", *args).stdout)


def _running_in_catalog(stack, kind: str) -> bool:
    """Read the controller's job table directly (read-only): is a `kind` job running?"""
    path = os.path.join(stack.state_dir, "catalog.sqlite")
    if not os.path.exists(path):
        return False
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT 1 FROM jobs WHERE kind=? AND result='running'", (kind,)).fetchone() is not None
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


def _kill_controller_during_backup(stack) -> subprocess.CompletedProcess:
    argv = stack.ragctl_argv("backup", "--components", "big")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _running_in_catalog(stack, "backup") and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, f"the backup ended before the kill: {proc.communicate()}"
        stack.kill("controller")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_jobs_lists_every_job_of_a_session(make_stack, tmp_path, monkeypatch):
    docs, big = tmp_path / "docs", tmp_path / "big"
    docs.mkdir()
    big.mkdir()
    write(str(docs / "a.txt"), b"alpha\n" * 1000)
    for i in range(3):
        write(str(big / f"v{i}.bin"), os.urandom(32 * MiB))
    st = make_stack({"docs": str(docs), "big": str(big)})
    before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))

    st.controller_extra = '[schedule]\nmin_gap = "0s"\n'  # the scheduled run right after is still due
    st.restart_controller()
    first = backup(st, "--components", "docs")
    monkeypatch.setenv("RAG_BACKUP_TRIGGER", "timer")
    st.ragctl("backup", "--components", "docs", "--scheduled")
    monkeypatch.delenv("RAG_BACKUP_TRIGGER")
    st.ragctl("restore", first["id"], "--components", "docs", "--target", str(tmp_path / "r"))
    st.ragctl("verify", "--read-data")
    packs = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(os.path.join(st.repo_dir, "data"))
                for n in names)
    st.ragctl("export", first["id"], "-o", str(tmp_path / "x.tar.gz"))
    st.ragctl("import", str(tmp_path / "x.tar.gz"))
    st.ragctl("catalog", "rebuild")
    assert st.ragctl("restore", "nope", check=False).returncode == 5

    st.stop_process("agent")
    down = st.ragctl("backup", "--components", "docs", check=False)
    assert down.returncode == 7, ragctl_output(down)
    st.start_agent()

    killed = _kill_controller_during_backup(st)
    assert killed.returncode == 7, ragctl_output(killed)
    st.start_controller()

    jobs = _jobs(st)
    print(json.dumps(jobs, indent=1))
    kinds = [j["kind"] for j in jobs]
    assert kinds == ["backup", "backup", "restore", "verify", "export", "import", "catalog-rebuild", "restore",
                     "backup", "backup"]
    assert [j["id"] for j in jobs] == sorted(j["id"] for j in jobs)
    me = f"{pwd.getpwuid(os.getuid()).pw_name}(uid={os.getuid()},pid="  # from the kernel, via the socket relay
    for j in jobs:
        assert j["caller"].startswith(me), j
        assert before <= j["started"] <= j["finished"], j
        assert j["result"] != "running"
    b1, b2, rs, vf, ex, im, cr, bad, agent_down, crashed = jobs
    assert (b1["trigger"], b2["trigger"]) == ("manual", "timer")
    assert b1["result"] == "success" and b1["snapshot"] == first["id"] and b1["components"] == ["docs"]
    stats = first["stats"]
    assert (b1["bytes_read"], b1["bytes_sent"], b1["bytes_added"]) == (
        stats["bytes_read"], stats["bytes_sent"], stats["bytes_stored"])
    assert b1["bytes_read"] == 6000 and b1["files"] == 1
    assert rs["result"] == "success" and rs["snapshot"] == first["id"] and rs["files"] == 1
    assert rs["bytes_sent"] == 6000
    assert vf["result"] == "success" and vf["bytes_read"] == packs > 0
    assert ex["snapshot"] == first["id"] and ex["bytes_sent"] == os.path.getsize(tmp_path / "x.tar.gz")
    assert im["result"] == "success" and im["snapshot"] and im["bytes_sent"] == ex["bytes_sent"]
    assert im["bytes_read"] == 6000 and im["files"] == 1
    assert cr["result"] == "success"
    assert (bad["result"], bad["error_class"]) == ("failure", "NotFound")
    assert agent_down["result"] == "failure" and agent_down["error_class"] == "AgentUnavailable"
    assert "local" in agent_down["error_message"]
    assert crashed["result"] == "interrupted" and crashed["components"] == ["big"]

    assert [j["id"] for j in _jobs(st, "--kind", "restore")] == [rs["id"], bad["id"]]
    assert [j["id"] for j in _jobs(st, "--limit", "2")] == [agent_down["id"], crashed["id"]]
    one = json.loads(st.ragctl("job", str(b1["id"]), "--json").stdout)
    assert one == b1
    listing = st.ragctl("jobs").stdout.splitlines()
    assert listing[0].split()[:6] == ["ID", "KIND", "TRIGGER", "STARTED", "FINISHED", "RESULT"]
    assert "interrupted" in listing[-1] and "AgentUnavailable" in listing[-2]
    assert st.ragctl("job", "0", check=False).returncode == 2
    missing = st.ragctl("job", "99999", check=False)
    assert missing.returncode == 5 and "no job 99999" in missing.stderr
    wrong = st.ragctl("jobs", "--kind", "nonsense", check=False)
    assert wrong.returncode == 2 and "nonsense" in wrong.stderr
