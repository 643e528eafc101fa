"""The demo's databases as services an agent can stop and start: a private Docker engine and two containers.

In: a directory for the engine's state (under the demo's work dir), host data dirs to bind-mount.
Out: a running dockerd of its own (own socket, data root, containerd namespace; no bridge, no
iptables), an image made from nothing but a merged-/usr skeleton (the host's /usr and this venv are
bind-mounted read-only, so no registry is needed), and `redis-server` / `chroma run` containers on
127.0.0.1 ports. The agent controls them with `service = "docker:NAME"`, as in production. Everything
started here is stopped by PID or name in `stop()`.
"""
from __future__ import annotations

import io
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass

import docker

from ragbackup import errors

IMAGE = "rag-backup-demo/usrbind:1"
SKELETON_DIRS = ("usr", "etc", "tmp", "var", "var/tmp", "data", "run", "root")
SKELETON_LINKS = (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin"))
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/sh\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def wait_for(ready, timeout_s: float, what: str, alive=lambda: True) -> None:
    """Poll `ready()` (exceptions count as not ready) until true; Unavailable after timeout_s or if not alive()."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _answers(ready):
            return
        if not alive():
            break
        time.sleep(0.1)
    raise errors.Unavailable(f"{what} did not become ready within {timeout_s:g}s")


def _answers(ready) -> bool:
    """ready(), with any exception meaning "not yet" (a client that cannot connect raises)."""
    try:
        return bool(ready())
    except Exception:  # noqa: BLE001 - not answering yet, whatever the client raised
        return False


def skeleton_tar() -> bytes:
    """A root filesystem with only directories, /usr links, passwd and group (root-owned, fixed mtimes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in SKELETON_DIRS:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name.endswith("tmp") else 0o755
            tar.addfile(info)
        for name, target in SKELETON_LINKS:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for name, data in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def containerd_namespace(exec_root: str) -> str:
    """The engine's containerd namespace, unique to its exec root: letters and digits joined by "-"
    (containerd refuses "_" next to "-", which a temporary directory's name may hold)."""
    return "rag-backup-demo-" + hashlib.blake2b(exec_root.encode(), digest_size=5).hexdigest()


@dataclass(frozen=True)
class Service:
    """One database container: its name (for `service = "docker:NAME"`), port and host data dir."""

    name: str
    port: int
    data_dir: str

    @property
    def service(self) -> str:
        return f"docker:{self.name}"


class DemoEngine:
    """A dockerd of the demo's own; start() returns once it answers, stop() ends it by PID."""

    def __init__(self, state_dir: str, log_dir: str):
        self.state_dir = state_dir
        self.log_path = os.path.join(log_dir, "dockerd.log")
        # Sockets must stay short (108 bytes): the exec root lives in /run, not in the work dir.
        self.exec_root = ""
        self.proc: subprocess.Popen | None = None
        self.client: docker.DockerClient | None = None
        self.containers: list[str] = []

    @property
    def host(self) -> str:
        return f"unix://{self.exec_root}/docker.sock"

    def start(self) -> None:
        if os.geteuid() != 0:
            raise errors.UsageError("ragctl demo starts a Docker engine of its own for its databases: run it as root")
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise errors.ConfigError("dockerd is not installed: run `bash scripts/setup.sh --demo` "
                                     "(it installs the docker.io package)")
        self.exec_root = tempfile.mkdtemp(prefix="rag-backup-demo-", dir="/run")
        namespace = containerd_namespace(self.exec_root)
        argv = [dockerd, "--bridge=none", "--iptables=false", "--ip-masq=false",
                f"--data-root={self.state_dir}", f"--exec-root={self.exec_root}",
                f"--pidfile={self.exec_root}/dockerd.pid", f"--containerd-namespace={namespace}",
                f"--containerd-plugins-namespace={namespace}-plugins", "-H", self.host]
        os.makedirs(self.state_dir, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        # The client negotiates the API version in its constructor: it is made once the socket answers.
        wait_for(lambda: docker.DockerClient(base_url=self.host, version="auto", timeout=5).close() is None,
                 START_TIMEOUT_S, f"dockerd (log: {self.log_path})", alive=lambda: self.proc.poll() is None)
        self.client = docker.DockerClient(base_url=self.host, version="auto", timeout=60)

    def build_image(self) -> str:
        """Import the skeleton image (a few hundred bytes; no registry)."""
        repository, _, tag = IMAGE.rpartition(":")
        self.client.api.import_image_from_data(skeleton_tar(), repository=repository, tag=tag)
        return IMAGE

    def _run(self, name: str, command: list[str], volumes: dict, environment: dict | None = None) -> None:
        binds = {"/usr": {"bind": "/usr", "mode": "ro"}, **volumes}
        self.containers.append(name)
        self.client.containers.run(IMAGE, command, name=name, detach=True, network_mode="host",
                                   volumes=binds, environment=environment or {})

    def run_redis(self, name: str, port: int, data_dir: str) -> Service:
        """`redis-server` (the host's Debian package) on 127.0.0.1:port with its data in data_dir."""
        os.makedirs(data_dir, exist_ok=True)
        self._run(name, ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", "/data",
                         "--save", "3600 1", "--appendonly", "no"],
                  {data_dir: {"bind": "/data", "mode": "rw"}})
        return Service(name, port, data_dir)

    def run_chroma(self, name: str, port: int, persist_dir: str) -> Service:
        """`chroma run` from this venv's chromadb package on 127.0.0.1:port, persist dir data_dir, telemetry off."""
        os.makedirs(persist_dir, exist_ok=True)
        chroma = os.path.join(sys.prefix, "bin", "chroma")
        if not os.access(chroma, os.X_OK):
            raise errors.ConfigError(f"{chroma} is missing: install the demo extra (`bash scripts/setup.sh --demo`)")
        self._run(name, [chroma, "run", "--path", "/data", "--host", "127.0.0.1", "--port", str(port)],
                  {sys.prefix: {"bind": sys.prefix, "mode": "ro"}, persist_dir: {"bind": "/data", "mode": "rw"}},
                  environment={"ANONYMIZED_TELEMETRY": "False"})
        return Service(name, port, persist_dir)

    def started_at(self, name: str) -> str:
        """When Docker last started the container (changes when the agent stops and starts it)."""
        return self.client.containers.get(name).attrs["State"]["StartedAt"]

    def stop_container(self, name: str) -> None:
        self.client.containers.get(name).stop(timeout=20)

    def start_container(self, name: str) -> None:
        self.client.containers.get(name).start()

    def stop(self) -> None:
        """Remove our containers, then SIGTERM our dockerd (SIGKILL its session after a grace period)."""
        if self.client is not None:
            for name in self.containers:
                try:
                    self.client.containers.get(name).remove(force=True)
                except docker.errors.DockerException:
                    pass
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.exec_root:
            _unmount_below(self.exec_root)
            shutil.rmtree(self.exec_root, ignore_errors=True)


def _unmount_below(root: str) -> None:
    """Unmount what dockerd left mounted below its exec root (it keeps netns/default mounted), deepest first."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(root.rstrip("/") + "/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", point], stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=30)


def chroma_heartbeat(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2) as response:
        return response.status == 200
