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
