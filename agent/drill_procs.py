"""Throwaway database servers of a restore drill, recorded by PID so none outlives the agent.

In: an argv to start (redis-server, `chroma run`) and the agent's drill registry directory.
Out: a running process in its own session whose PID and kernel start time are written to
the registry before it can do anything; `stop` ends it and forgets it; `kill_leftovers`, run
at agent start, kills what a killed agent left running (only processes whose start time
still matches: a reused PID is never signalled) and empties the registry. `serving` and
`wait_serving` are what a kind's drill checks (agent/kinds/*/verify.py) start and wait on.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ragbackup import errors
from ragbackup.config import AgentConfig
from ragbackup.v1 import agent_pb2

from ragbackup.agent import ready

log = logging.getLogger("ragbackup.agent.drill")

REGISTRY = "drill-processes"  # below the agent's staging dir
STOP_GRACE_S = 10.0


def registry_dir(staging_dir: str) -> str:
    return os.path.join(staging_dir, REGISTRY)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); "" if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces and parens
    return fields[19] if len(fields) > 19 else ""


def _record_path(registry: str, pid: int) -> str:
    return os.path.join(registry, str(pid))


def start(argv: list[str], registry: str, log_path: str, cwd: str, env: dict | None = None) -> subprocess.Popen:
    """Start `argv` in a new session (its own process group), recorded in `registry`."""
    os.makedirs(registry, mode=0o700, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env=env, start_new_session=True)
    path = _record_path(registry, proc.pid)
    with open(path + ".tmp", "w", encoding="ascii") as f:
        f.write(f"{start_time(proc.pid)} {os.path.basename(argv[0])}\n")
    os.replace(path + ".tmp", path)
    return proc


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def stop(proc: subprocess.Popen, registry: str, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group, SIGKILL after `grace_s`; reap it and drop its record."""
    if proc.poll() is None:
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
    _kill_group(proc.pid, signal.SIGKILL)  # children left in the group (chroma's workers)
    try:
        os.unlink(_record_path(registry, proc.pid))
    except FileNotFoundError:
        pass


def kill_leftovers(registry: str) -> list[int]:
    """Kill recorded drill processes still running (same PID and start time); returns their PIDs."""
    if not os.path.isdir(registry):
        return []
    killed = []
    for name in os.listdir(registry):
        path = os.path.join(registry, name)
        if name.isdigit() and _still_ours(int(name), path):
            _kill_group(int(name), signal.SIGKILL)
            _wait_gone(int(name))
            killed.append(int(name))
        os.unlink(path)
    if killed:
        log.warning("killed %d drill process(es) a previous agent left running: %s", len(killed),
                    ", ".join(map(str, killed)))
    return killed


def _still_ours(pid: int, record: str) -> bool:
    try:
        with open(record, encoding="ascii") as f:
            recorded = f.read().split()
    except OSError:
        return False
    return bool(recorded) and recorded[0] != "" and start_time(pid) == recorded[0]


def _wait_gone(pid: int, timeout_s: float = 5.0) -> None:
    """Until /proc/PID is gone or a zombie (its parent, the dead agent, is gone: init reaps it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state == "Z":
            return
        time.sleep(0.05)


# ---------------------------------------------------------------- what a kind's drill checks use


@dataclass(frozen=True)
class DrillSetup:
    """What a drill uses of the agent: config (staging dir), decode workers, and the call's state."""

    cfg: AgentConfig
    workers: int
    pool: ThreadPoolExecutor
    alive: Callable[[], bool]  # False once the controller ended the call
    deadline: float  # time.monotonic() by which a throwaway server must answer


def check(name: str, ok: bool, detail: str) -> agent_pb2.CheckResult:
    return agent_pb2.CheckResult(name=name, ok=ok, detail=detail)


def find_binary(name: str) -> str | None:
    """`name` on PATH, else beside this Python (a virtualenv's `chroma`)."""
    return shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))


def require_binary(name: str) -> str:
    """find_binary, or ConfigError: the drill cannot start the restored data without it."""
    binary = find_binary(name)
    if binary is None:
        raise errors.ConfigError(f"{name} is not installed on this agent (not on PATH): the drill cannot start "
                                 "the restored data")
    return binary


@contextlib.contextmanager
def serving(argv: list[str], name: str, scratch: str, setup: DrillSetup,
            env: dict | None = None) -> Iterator[subprocess.Popen]:
    """A throwaway server for the length of the block (logging to SCRATCH/NAME.log), recorded by PID."""
    registry = registry_dir(setup.cfg.staging_dir)
    proc = start(argv, registry, os.path.join(scratch, f"{name}.log"), scratch, env)
    try:
        yield proc
    finally:
        stop(proc, registry)


def log_tail(scratch: str, name: str, limit: int = 600) -> str:
    try:
        with open(os.path.join(scratch, f"{name}.log"), "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return " ".join(text.split())[-limit:]


def wait_serving(probe: Callable[[], bool], proc: subprocess.Popen, name: str, scratch: str,
                 setup: DrillSetup) -> None:
    """Until `probe()` passes; Unhealthy if the server exits, Cancelled with the call, NotReady past the deadline."""
    def abort() -> None:
        if proc.poll() is not None:
            raise errors.Unhealthy(f"{name} exited with status {proc.returncode} on the restored data: "
                                   f"{log_tail(scratch, name)}")
        if not setup.alive():
            raise errors.Cancelled("the controller ended the drill")

    ready.wait_until(probe, max(0.0, setup.deadline - time.monotonic()), f"{name} on the restored data",
                     abort=abort)
