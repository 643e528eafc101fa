"""The drill's process registry: recorded throwaway servers are killed at the next agent start."""
from __future__ import annotations

import os
import subprocess

from ragbackup.agent import drill_procs


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_stop_ends_the_process_and_forgets_it(tmp_path):
    registry = str(tmp_path / "reg")
    proc = drill_procs.start(["sleep", "300"], registry, str(tmp_path / "log"), str(tmp_path))
    assert os.listdir(registry) == [str(proc.pid)]
    drill_procs.stop(proc, registry)
    assert proc.returncode is not None and os.listdir(registry) == []


def test_kill_leftovers_kills_recorded_processes_of_a_dead_agent(tmp_path):
    """A process recorded by an agent that died (here: never stopped) is killed, group and all."""
    registry = str(tmp_path / "reg")
    proc = drill_procs.start(["sh", "-c", "sleep 300 & wait"], registry, str(tmp_path / "log"), str(tmp_path))
    try:
        assert drill_procs.kill_leftovers(registry) == [proc.pid]
        proc.wait(10)
        assert os.listdir(registry) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_reused_pid_is_never_signalled(tmp_path):
    """A record whose start time no longer matches (the PID now belongs to another process) is dropped."""
    registry = tmp_path / "reg"
    other = subprocess.Popen(["sleep", "300"])
    try:
        registry.mkdir()
        (registry / str(other.pid)).write_text("1 redis-server\n")  # started at tick 1: not this process
        (registry / "not-a-pid").write_text("")
        assert drill_procs.kill_leftovers(str(registry)) == []
        assert _alive(other.pid) and list(registry.iterdir()) == []
    finally:
        other.kill()
        other.wait()


def test_no_registry_is_nothing_to_do(tmp_path):
    assert drill_procs.kill_leftovers(str(tmp_path / "absent")) == []
