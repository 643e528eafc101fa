"""The benchmark sees a daemon's worker processes, even ones running the runner's own Python.

In: a Python parent (standing in for the agent) whose child, the same interpreter, touches 64 MB and
waits. Out: sampled with `pre_exec_of(parent)`, the child's peak is counted and the parent's own
process is not; the runner's default skip would have taken the child for a fork of the runner.
"""
from __future__ import annotations

import subprocess
import sys
import time

from bench.measure import RssSampler, pre_exec_of

CHILD = "import time; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"
PARENT = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])"


def _sampled(skip_for) -> dict[int, tuple[str, int]]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        sampler = RssSampler([parent.pid], interval=0.05, **skip_for(parent.pid))
        sampler.start()
        time.sleep(1.0)
        sampler.stop()
    finally:
        parent.wait(10)
    return {pid: peak for pid, peak in sampler.peaks.items() if pid != parent.pid}


def test_a_worker_running_the_runners_python_is_sampled_with_the_parents_skip():
    children = _sampled(lambda pid: {"skip": pre_exec_of(pid)})
    assert children and max(hwm for _name, hwm in children.values()) >= 64 << 20


def test_the_runners_default_skip_would_miss_it():
    assert _sampled(lambda pid: {}) == {}
