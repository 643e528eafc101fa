"""A throwaway redis-server on a free 127.0.0.1 port with its own temp dir, stopped by PID.

In: a directory (optionally holding a dump.rdb to load). Out: a running server (port, pid); SAVE writes
dir/dump.rdb.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis


@dataclass(frozen=True)
class RedisServer:
    port: int
    pid: int
    data_dir: Path

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=600)

    @property
    def rdb(self) -> Path:
        return self.data_dir / "dump.rdb"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen, port: int, timeout: float) -> None:
    """Wait until PING answers (an RDB being loaded answers LOADING until done)."""
    deadline = time.monotonic() + timeout
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode} before answering PING")
        try:
            if client.ping():
                return
        except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
            time.sleep(0.05)
    raise TimeoutError(f"redis-server on port {port} did not answer PING within {timeout}s")


def _stop(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """Stop the server we started, by its PID (SIGTERM; save is disabled so it does not write)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def redis_server(data_dir: Path, load_timeout: float = 600.0) -> Iterator[RedisServer]:
    """Run redis-server with `data_dir` as its dir (loads data_dir/dump.rdb if present)."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
           "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no",
           "--protected-mode", "yes", "--enable-debug-command", "local", "--logfile", "",
           "--loglevel", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        _wait_ready(proc, port, load_timeout)
        yield RedisServer(port, proc.pid, data_dir)
    finally:
        _stop(proc)
