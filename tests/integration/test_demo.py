"""`ragctl demo` end to end, as the quick start runs it: a real redis-server and `chroma run` in
containers of the demo's own Docker engine, the daemons as processes, every step through ragctl.

In: a fresh work dir (then the same dir again, holding a file of the user's). Out: exit 0 and the
PASSED line; the report names the whole-stack steps; --keep keeps the repository, configs and logs;
a second run without --keep reuses the previous demo's dir and removes only what the demo created;
a foreign non-empty dir is refused before anything starts.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.chroma, pytest.mark.docker, pytest.mark.slow]
DEMO_TIMEOUT_S = 400


def ragctl_demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ragbackup.cli.main", "demo", *args], capture_output=True,
                          text=True, timeout=DEMO_TIMEOUT_S, stdin=subprocess.DEVNULL)


def _engine_dirs() -> set[str]:
    return {n for n in os.listdir("/run") if n.startswith("rag-backup-demo-")}


@pytest.fixture
def demo_needs():
    """chromadb in this venv and dockerd on the host; missing ones skip (fail when CI=true)."""
    missing = [what for what, ok in (("chromadb", os.access(os.path.join(sys.prefix, "bin", "chroma"), os.X_OK)),
                                     ("dockerd", shutil.which("dockerd") is not None)) if not ok]
    if missing and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"ragctl demo needs {', '.join(missing)}; CI=true requires this test to run")
    if missing:
        pytest.skip(f"ragctl demo needs {', '.join(missing)} (bash scripts/setup.sh --demo)")


def test_demo_runs_the_whole_stack_then_reuses_its_dir_and_removes_only_its_own(demo_needs, tmp_path):
    wd = tmp_path / "demo"
    engines_before = _engine_dirs()
    first = ragctl_demo("--workdir", str(wd), "--keep")
    out = first.stdout
    assert first.returncode == 0, f"{out}\n{first.stderr}"
    assert out.rstrip().splitlines()[-1] == "demo PASSED"
    assert "FAILED" not in out
    for step in ("backup 1: snapshot", "OK    the agent stopped and started the containers demo-chroma, demo-redis",
                 "of chroma, config, documents, processing, redis", "backup 2: snapshot",
                 "disaster: redis", "disaster: chroma", "restore latest --components chroma,redis",
                 "OK    chroma: the agent found no difference", "OK    redis DBSIZE",
                 "probe's top-k ids equal the snapshot's", "a fresh redis-server on", "a fresh chroma on",
                 "OK    verify --read-data", f"kept for inspection: {wd}"):
        assert step in out, step
    assert (wd / ".rag-backup-demo").is_file()
    assert (wd / "stack" / "repository").is_dir() and (wd / "stack" / "agent.log").is_file()
    assert (wd / "stack" / "controller-state").is_dir() and (wd / "docker").is_dir(), "the daemons' state is kept"
    assert list((wd / "data").glob("chroma.corrupted.*")), "the damaged Chroma dir was kept aside"
    assert _engine_dirs() <= engines_before, "the engine's runtime dir (and its netns mount) is gone"

    (wd / "notes.txt").write_text("the user's")
    second = ragctl_demo("--workdir", str(wd))
    assert second.returncode == 0, f"{second.stdout}\n{second.stderr}"
    assert second.stdout.rstrip().splitlines()[-1] == "demo PASSED"
    assert f"removed what the demo created in {wd}" in second.stdout
    assert sorted(os.listdir(wd)) == ["notes.txt"]


def test_demo_refuses_a_foreign_non_empty_dir_before_starting_anything(tmp_path):
    (tmp_path / "notes.txt").write_text("the user's")
    refused = ragctl_demo("--workdir", str(tmp_path))
    assert refused.returncode == 2
    assert "is not a previous demo's work dir" in refused.stderr and "--force" in refused.stderr
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
