"""Under CI=true a skip fails the run, except a case kept for the long run; without CI a skip stays a skip.

In: a two-test file run by pytest as a process with the fixtures.ci_skips plugin. Out: its summary line.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CASES = '''
import pytest

def test_needs_a_missing_tool():
    pytest.skip("weed not found")

@pytest.mark.skipif(True, reason="about a minute per try: RAG_BACKUP_RELIABILITY=long")
def test_long_run_only():
    pass
'''


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "fixtures.ci_skips",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_a_skip_under_ci_fails_and_names_its_reason(tmp_path):
    cp = _run(tmp_path, "true")
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert "1 failed, 1 skipped" in cp.stdout, cp.stdout
    assert "skipped under CI=true, where every test must run: Skipped: weed not found" in cp.stdout, cp.stdout


def test_without_ci_a_skip_stays_a_skip(tmp_path):
    cp = _run(tmp_path, "")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "2 skipped" in cp.stdout, cp.stdout
