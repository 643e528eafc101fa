"""Measuring one benchmark step: wall time, CPU (user+sys of children), peak RSS per process, cache drop.

In: commands (pipelines) or any code run inside a Meter. Out: a Measurement (plain data, JSON-ready).
"""
from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Measurement:
    """Figures for one phase of one tool in one run; sizes in bytes, times in seconds."""

    wall_s: float = 0.0
    cpu_user_s: float = 0.0
    cpu_sys_s: float = 0.0
    peak_rss: dict[str, int] = field(default_factory=dict)
    bytes_processed: int = 0
    bytes_added: int = 0
    repo_bytes: int = 0
    cache_dropped: bool = False
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s

    @property
    def mb_per_s(self) -> float:
        return self.bytes_processed / 1e6 / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def max_rss(self) -> int:
        return max(self.peak_rss.values(), default=0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(cpu_s=round(self.cpu_s, 3), mb_per_s=round(self.mb_per_s, 2), max_rss=self.max_rss)
        return d


class CommandError(RuntimeError):
    """A measured command exited non-zero; the message carries its command line and stderr tail."""


def drop_caches() -> bool:
    """sync, then drop the page cache, dentries and inodes; False if the kernel does not allow it here."""
    os.sync()
    try:
        with open(DROP_CACHES, "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def proc_cpu_s(pid: int) -> tuple[float, float]:
    """(user, sys) seconds of a live process, including its reaped children (/proc/PID/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + cutime) / CLK_TCK, (stime + cstime) / CLK_TCK


def vm_hwm(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process, bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); False if not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """pid and all its live descendants (via /proc/PID/task/TID/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = list(Path(f"/proc/{p}/task").glob("*/children"))
        except OSError:  # exited while we looked
            continue
        for task in tasks:
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                continue
    return out


_SELF_COMM = Path("/proc/self/comm").read_text().strip()
_SELF_EXE = os.path.realpath("/proc/self/exe")


def _is_runner_image(pid: int, comm: str) -> bool:
    """True for a child between fork and exec (same program and name as this process)."""
    return comm == _SELF_COMM and os.path.realpath(f"/proc/{pid}/exe") == _SELF_EXE


def cmdline(pid: int) -> bytes:
    """The command line of a live process, NUL-separated (b"" once it has ended)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def pre_exec_of(root: int) -> Callable[[int, str], bool]:
    """A `skip` for RssSampler over `root`'s children: true for one still running `root`'s own
    command line (forked, not yet exec'd: `root`'s memory, not its own). The test the default skip
    makes, same program as the runner, would also drop a child that runs the runner's Python."""
    own = cmdline(root)
    return lambda pid, _comm: cmdline(pid) == own


class RssSampler(threading.Thread):
    """Polls VmHWM of a process tree until stopped; keeps the peak per process name.

    Why not ru_maxrss from wait4: a child spawned by vfork/fork inherits the parent's high-water mark at
    exec (the kernel keeps it in signal->maxrss), so every child of a big Python parent reports the parent's
    peak. VmHWM belongs to the exec'd image. Processes living less than one interval can be missed.
    """

    def __init__(self, pids: list[int], interval: float = 0.02,
                 skip: Callable[[int, str], bool] = _is_runner_image) -> None:
        """`skip(pid, comm)`: true for a process not to sample (by default one the runner forked
        that has not exec'd yet)."""
        super().__init__(daemon=True)
        self.pids, self.interval, self.skip = pids, interval, skip
        self.peaks: dict[int, tuple[str, int]] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> None:
        for root in self.pids:
            for pid in descendants(root):
                try:
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                    if self.skip(pid, name):
                        continue  # forked but not yet exec'd: still its parent's memory
                    hwm = vm_hwm(pid)
                except OSError:
                    continue
                # the newest name wins: mid-exec, comm can still be the runner's for a moment
                self.peaks[pid] = (name, max(hwm, self.peaks.get(pid, ("", 0))[1]))

    def stop(self) -> dict[str, int]:
        """Stop polling; peak bytes per process name (max over processes of that name)."""
        self._stop_event.set()
        self.join()
        out: dict[str, int] = {}
        for name, hwm in self.peaks.values():
            out[name] = max(out.get(name, 0), hwm)
        return out


def _tail(f: IO[bytes], limit: int = 2000) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")[-limit:]


class Meter:
    """Times the code in its `with` block; `run()` starts pipelines and records each process's peak RSS.

    CPU is the RUSAGE_CHILDREN delta (every child reaped inside the block, including
    subprocess.run calls made by plugins), plus whatever `add_cpu` reports for daemons.
    Peak RSS is VmHWM per process name, sampled by RssSampler (see there for why not ru_maxrss).
    The wall time ends after a sync(2), so tools that do not fsync are not timed against the page cache.
    """

    def __init__(self, drop_cache: bool = True, final_sync: bool = True) -> None:
        self.drop_cache = drop_cache
        self.final_sync = final_sync
        self.result = Measurement()

    def __enter__(self) -> Meter:
        self.result.cache_dropped = drop_caches() if self.drop_cache else False
        self._ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.final_sync:  # written data counts once it is on disk, not while it sits in the page cache
            t_sync = time.perf_counter()
            os.sync()
            self.result.notes["final_sync_s"] = round(time.perf_counter() - t_sync, 4)
        wall = time.perf_counter() - self._t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.result.wall_s = round(wall, 4)
        self.result.cpu_user_s += ru1.ru_utime - self._ru0.ru_utime
        self.result.cpu_sys_s += ru1.ru_stime - self._ru0.ru_stime

    def add_cpu(self, user_s: float, sys_s: float) -> None:
        self.result.cpu_user_s += user_s
        self.result.cpu_sys_s += sys_s

    def record_rss(self, name: str, rss_bytes: int) -> None:
        self.result.peak_rss[name] = max(self.result.peak_rss.get(name, 0), rss_bytes)

    def run(self, *stages: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None,
            stdin: Path | None = None, stdout: Path | None = None) -> None:
        """Run `stages` as a pipeline (stage i's stdout feeds stage i+1); raise CommandError on failure."""
        procs: list[subprocess.Popen] = []
        errs = [tempfile.TemporaryFile() for _ in stages]
        src = open(stdin, "rb") if stdin else subprocess.DEVNULL
        dst = open(stdout, "wb") if stdout else subprocess.DEVNULL
        try:
            for i, argv in enumerate(stages):
                last = i == len(stages) - 1
                inp = procs[-1].stdout if procs else src
                procs.append(subprocess.Popen(argv, cwd=cwd, env=None if env is None else dict(env),
                                              stdin=inp, stdout=dst if last else subprocess.PIPE,
                                              stderr=errs[i]))
                if i > 0 and procs[-2].stdout is not None:
                    procs[-2].stdout.close()
            sampler = RssSampler([p.pid for p in procs])
            sampler.start()
            try:
                self._reap(procs, errs, stages)
            finally:
                for name, hwm in sampler.stop().items():
                    self.record_rss(name, hwm)
        finally:
            for f in (src, dst, *errs):
                if hasattr(f, "close"):
                    f.close()

    @staticmethod
    def _reap(procs: list[subprocess.Popen], errs: list[IO[bytes]], stages: tuple[list[str], ...]) -> None:
        failures = []
        for proc, err, argv in zip(procs, errs, stages):
            if proc.wait() != 0:
                failures.append(f"{' '.join(argv)} -> exit {proc.returncode}: {_tail(err)}")
        if failures:
            raise CommandError("; ".join(failures))
