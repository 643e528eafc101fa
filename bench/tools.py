"""The tools under test behind one interface: init(repo), backup(src), restore(dest), repo_size(), close().

In: a ToolConfig (scratch dir, page-cache policy) and paths. Out: a Measurement per backup/restore call.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.measure import CommandError, Measurement, Meter, RssSampler, pre_exec_of, proc_cpu_s, reset_hwm, vm_hwm
from bench.tree import dir_bytes, remove_tree

PASSWORD = "bench-not-a-secret"
RUNBOOK_TARBALLS = (("chromadb.tar.gz", "chroma"), ("redis.tar.gz", "redis"),
                    ("documents.tar.gz", "documents"), ("state.tar.gz", "processing"),
                    ("config.tar.gz", "config"))
COMPONENTS = ("documents", "chroma", "redis", "config", "processing")


@dataclass(frozen=True)
class ToolConfig:
    """Where a tool keeps its caches and scratch files, and whether to drop the page cache before timing."""

    scratch: Path
    drop_cache: bool = True


class Tool(Protocol):
    name: str

    def unavailable(self) -> str | None:
        """None if the tool can run here, else why not."""

    def version(self) -> str: ...
    def init(self, repo_dir: Path) -> None: ...
    def backup(self, src_dir: Path) -> Measurement: ...
    def restore(self, dest_dir: Path) -> Measurement: ...
    def repo_size(self) -> int: ...
    def close(self) -> None: ...


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError as e:
        return f"unavailable ({e})"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


class CommandTool:
    """Shared plumbing for tools driven by command lines: a repo dir, an env, a snapshot counter."""

    name = "?"
    binaries: tuple[str, ...] = ()

    def __init__(self, cfg: ToolConfig) -> None:
        self.cfg = cfg
        self.repo = Path()
        self.snapshots = 0

    def unavailable(self) -> str | None:
        missing = [b for b in self.binaries if shutil.which(b) is None]
        return f"not installed: {', '.join(missing)}" if missing else None

    def version(self) -> str:
        return _first_line([self.binaries[0], "--version"])

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def init(self, repo_dir: Path) -> None:
        self.repo = repo_dir
        self.repo.mkdir(parents=True, exist_ok=True)
        self.cfg.scratch.mkdir(parents=True, exist_ok=True)

    def repo_size(self) -> int:
        return dir_bytes(self.repo)

    def close(self) -> None:
        return None

    def _measure(self, body: Callable[[Meter], None]) -> Measurement:
        before = self.repo_size()
        with Meter(self.cfg.drop_cache) as meter:
            body(meter)
        meter.result.bytes_added = self.repo_size() - before
        meter.result.notes["local_cache_bytes"] = dir_bytes(self.cfg.scratch)  # not in the repo size
        return meter.result


class ResticTool(CommandTool):
    """restic, local repository, repository format 2 with `--compression auto`."""

    name = "restic"
    binaries = ("restic",)

    def version(self) -> str:
        return _first_line(["restic", "version"])

    def env(self) -> dict[str, str]:
        return {**os.environ, "RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(self.repo),
                "RESTIC_CACHE_DIR": str(self.cfg.scratch / "restic-cache")}

    def init(self, repo_dir: Path) -> None:
        super().init(repo_dir)
        subprocess.run(["restic", "init", "--repository-version", "2"], env=self.env(), check=True,
                       capture_output=True)

    def backup(self, src_dir: Path) -> Measurement:
        argv = ["restic", "backup", "--compression", "auto", "--host", "bench", "--quiet", "."]
        return self._measure(lambda m: m.run(argv, cwd=src_dir, env=self.env()))

    def restore(self, dest_dir: Path) -> Measurement:
        argv = ["restic", "restore", "latest", "--host", "bench", "--target", str(dest_dir), "--quiet"]
        return self._measure(lambda m: m.run(argv, env=self.env()))


class BorgTool(CommandTool):
    """borg 1.x, `repokey` encryption, one compression setting per instance."""

    binaries = ("borg",)

    def __init__(self, cfg: ToolConfig, name: str, compression: str) -> None:
        super().__init__(cfg)
        self.name = name
        self.compression = compression

    def env(self) -> dict[str, str]:
        base = self.cfg.scratch / self.name
        return {**os.environ, "BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(base),
                "BORG_CACHE_DIR": str(base / "cache"), "BORG_CONFIG_DIR": str(base / "config"),
                "BORG_SECURITY_DIR": str(base / "security"), "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def init(self, repo_dir: Path) -> None:
        super().init(repo_dir)
        remove_tree(self.repo)  # borg wants to create the repository directory itself
        argv = ["borg", "init", "--encryption", "repokey", str(self.repo)]
        subprocess.run(argv, env=self.env(), check=True, capture_output=True)

    def backup(self, src_dir: Path) -> Measurement:
        self.snapshots += 1
        archive = f"{self.repo}::snap-{self.snapshots}"
        argv = ["borg", "create", "--compression", self.compression, archive, "."]
        return self._measure(lambda m: m.run(argv, cwd=src_dir, env=self.env()))

    def restore(self, dest_dir: Path) -> Measurement:
        dest_dir.mkdir(parents=True, exist_ok=True)
        argv = ["borg", "extract", f"{self.repo}::snap-{self.snapshots}"]
        return self._measure(lambda m: m.run(argv, cwd=dest_dir, env=self.env()))


class TarZstdTool(CommandTool):
    """`tar -cf - . | zstd -T0 -3`: one full archive per backup, kept side by side."""

    name = "tarzstd"
    binaries = ("tar", "zstd")

    def _archive(self) -> Path:
        return self.repo / f"backup-{self.snapshots}.tar.zst"

    def backup(self, src_dir: Path) -> Measurement:
        self.snapshots += 1
        tar, zstd = ["tar", "-cf", "-", "-C", str(src_dir), "."], ["zstd", "-T0", "-3", "-q", "-c"]
        return self._measure(lambda m: m.run(tar, zstd, stdout=self._archive()))

    def restore(self, dest_dir: Path) -> Measurement:
        dest_dir.mkdir(parents=True, exist_ok=True)
        unzstd, untar = ["zstd", "-dc", "-q", str(self._archive())], ["tar", "-xf", "-", "-C", str(dest_dir)]
        return self._measure(lambda m: m.run(unzstd, untar))


class RunbookTool(CommandTool):
    """The bash runbook: one `tar -czf` per component, then a tar.gz of those tarballs and a manifest."""

    name = "runbook"
    binaries = ("tar", "gzip")

    def _name(self) -> str:
        return f"rag-system-backup-20250101_{self.snapshots:06d}"

    def backup(self, src_dir: Path) -> Measurement:
        self.snapshots += 1
        return self._measure(lambda m: self._backup(m, src_dir))

    def _backup(self, m: Meter, src_dir: Path) -> None:
        stage = self.repo / self._name()
        stage.mkdir()
        present = [(t, c) for t, c in RUNBOOK_TARBALLS if (src_dir / c).exists()]
        for tarball, comp in present:
            m.run(["tar", "-czf", str(stage / tarball), "-C", str(src_dir), comp])
        manifest = {"backup_name": self._name(), "components": [t for t, _ in present]}
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2))
        m.run(["tar", "-czf", str(self.repo / f"{self._name()}.tar.gz"), "-C", str(self.repo), self._name()])
        shutil.rmtree(stage)

    def restore(self, dest_dir: Path) -> Measurement:
        return self._measure(lambda m: self._restore(m, dest_dir))

    def _restore(self, m: Meter, dest_dir: Path) -> None:
        unpack = self.cfg.scratch / "runbook-unpack"
        remove_tree(unpack)
        unpack.mkdir(parents=True)
        dest_dir.mkdir(parents=True, exist_ok=True)
        m.run(["tar", "-xzf", str(self.repo / f"{self._name()}.tar.gz"), "-C", str(unpack)])
        for tarball, _ in RUNBOOK_TARBALLS:
            inner = unpack / self._name() / tarball
            if inner.exists():
                m.run(["tar", "-xzf", str(inner), "-C", str(dest_dir)])
        shutil.rmtree(unpack)


class RagBackupTool:
    """rag-backup's real daemons (agent and controller processes, real gRPC) via `ragbackup.localstack`.

    "ragbackup" is the single-host deployment: the controller reaches the agent on its unix socket.
    "ragbackup-tls" reaches it over TCP with mutual TLS, as it would an agent on another host.
    Each init() starts a fresh stack, so VmHWM is meaningful per run; it is also reset per phase when
    the kernel allows (clear_refs). CPU = ragctl (reaped child) + agent and controller /proc deltas
    (their reaped children included: the agent's RDB rebuild worker). The agent's peak RSS includes
    its worker processes' (agent/rebuild_worker.py): their peak added to its own, an upper bound on
    what the two held together; "agent-worker" is the workers' alone.
    """

    def __init__(self, cfg: ToolConfig, name: str = "ragbackup", agent_socket: bool = True) -> None:
        self.name = name
        self.agent_socket = agent_socket
        self.cfg = cfg
        self._cm: object | None = None
        self._stack: object | None = None
        self._src: Path | None = None

    @staticmethod
    def _local_stack() -> Callable[[Path], object]:
        from ragbackup.localstack import local_stack
        return local_stack

    def unavailable(self) -> str | None:
        try:
            self._local_stack()
        except ImportError as e:
            return f"ragbackup is not importable ({e})"
        return None

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return f"rag-backup {version('rag-backup')}"
        except PackageNotFoundError:
            return "rag-backup (not installed as a distribution)"

    def init(self, repo_dir: Path) -> None:
        repo_dir.mkdir(parents=True, exist_ok=True)
        self._cm = self._stack = self._local_stack()(str(repo_dir), agent_socket=self.agent_socket)

    def _start(self, src_dir: Path) -> None:
        """Declare one component per dataset part, start the daemons, create the repository."""
        for comp in COMPONENTS:
            if (src_dir / comp).exists():
                self._stack.add_paths_component(comp, str(src_dir / comp))  # type: ignore[attr-defined]
        self._stack.start()  # type: ignore[attr-defined]
        self._stack.ragctl("init")  # type: ignore[attr-defined]
        self._src = src_dir

    def backup(self, src_dir: Path) -> Measurement:
        if self._src is None:
            self._start(src_dir)
        elif self._src != src_dir:
            raise CommandError(f"rag-backup tool: source moved from {self._src} to {src_dir}")
        return self._ragctl("backup")

    def restore(self, dest_dir: Path) -> Measurement:
        dest_dir.mkdir(parents=True, exist_ok=True)
        return self._ragctl("restore", "latest", "--target", str(dest_dir))

    def _ragctl(self, *args: str) -> Measurement:
        stack = self._stack
        before = self.repo_size()
        with Meter(self.cfg.drop_cache) as m:
            pids: dict[str, int] = stack.pids()  # type: ignore[attr-defined]
            reset = {n: reset_hwm(p) for n, p in pids.items()}
            cpu0 = {n: proc_cpu_s(p) for n, p in pids.items()}
            workers = RssSampler([pids["agent"]], interval=0.05, skip=pre_exec_of(pids["agent"]))
            workers.start()
            done = stack.ragctl(*args, check=False)  # type: ignore[attr-defined]
            worker_peak = _workers_peak(workers, pids["agent"])
            for n, p in pids.items():
                (u1, s1), (u0, s0) = proc_cpu_s(p), cpu0[n]
                m.add_cpu(u1 - u0, s1 - s0)
                m.record_rss(n, vm_hwm(p) + (worker_peak if n == "agent" else 0))
            if worker_peak:
                m.record_rss("agent-worker", worker_peak)
        if done.returncode != 0:
            tail = str(done.stderr)[-2000:]
            raise CommandError(f"ragctl {' '.join(args)} -> exit {done.returncode}: {tail}")
        m.result.bytes_added = self.repo_size() - before
        m.result.notes["vmhwm_reset_per_phase"] = all(reset.values())
        return m.result

    def repo_size(self) -> int:
        return dir_bytes(Path(self._stack.repo_dir))  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._stack is not None:
            self._stack.stop()  # type: ignore[attr-defined]
            self._cm = self._stack = self._src = None


def _workers_peak(sampler: RssSampler, agent: int) -> int:
    """Stop `sampler`; the largest peak RSS among the agent's child processes it saw (0: none)."""
    sampler.stop()
    return max((hwm for pid, (_name, hwm) in sampler.peaks.items() if pid != agent), default=0)


FACTORIES: dict[str, Callable[[ToolConfig], Tool]] = {
    "restic": ResticTool,
    "borg-lz4": lambda cfg: BorgTool(cfg, "borg-lz4", "lz4"),
    "borg-zstd": lambda cfg: BorgTool(cfg, "borg-zstd", "zstd,3"),
    "tarzstd": TarZstdTool,
    "runbook": RunbookTool,
    "ragbackup": RagBackupTool,
    "ragbackup-tls": lambda cfg: RagBackupTool(cfg, "ragbackup-tls", agent_socket=False),
}
TOOL_NAMES = tuple(FACTORIES)


def make_tool(name: str, cfg: ToolConfig) -> Tool:
    """A tool by its command-line name."""
    if name not in FACTORIES:
        raise ValueError(f"unknown tool {name!r}; known: {', '.join(FACTORIES)}")
    return FACTORIES[name](cfg)
