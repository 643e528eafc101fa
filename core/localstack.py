"""A complete rag-backup deployment on loopback: CA, configs, agent and controller processes.

In: a work directory, components to declare, optionally S3 repository settings,
and the transport between controller and agent: TCP with mTLS (the default), or
the agent's unix socket (agent_socket=True: the single-host deployment, no TLS).
Out: a running LocalStack (separate daemon processes talking real gRPC) that
`ragctl demo`, the integration tests and the benchmark drive through `ragctl`.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import subprocess
import sys
import time
from dataclasses import dataclass, field

from ragbackup import pki, unixsock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_dir(workdir: str) -> str:
    """Where the sockets go: `workdir/run`, or when that would make a socket path too long for AF_UNIX
    (a deep temporary directory), a short directory in the system's temp dir named after workdir's hash,
    so every LocalStack on the same workdir finds the same sockets."""
    near = os.path.join(workdir, "run")
    if len(os.path.join(near, "controller.sock")) <= unixsock.MAX_PATH:
        return near
    digest = hashlib.blake2b(workdir.encode(), digest_size=6).hexdigest()
    return os.path.join(tempfile.gettempdir(), f"rb-run-{digest}")


def _toml_str(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(v) -> str:
    """A TOML scalar: strings quoted, numbers as they are, booleans as true/false."""
    return _toml_str(v) if isinstance(v, str) else str(v).lower()


@dataclass
class ComponentDecl:
    name: str
    kind: str
    path: str
    extra: dict = field(default_factory=dict)


class LocalStack:
    """Agent + controller as child processes; stop() ends them by PID."""

    def __init__(self, workdir: str, s3: dict | None = None, insecure: bool = False, agent_socket: bool = False,
                 env: dict[str, str] | None = None):
        self.workdir = os.path.abspath(workdir)
        self.env = dict(env or {})  # added to the daemons' environment (e.g. DOCKER_HOST for the agent)
        self.s3 = s3
        self.insecure = insecure
        self.run_dir = run_dir(self.workdir)
        self.agent_socket = os.path.join(self.run_dir, "agent.sock") if agent_socket else ""
        self.pki_dir = os.path.join(self.workdir, "pki")
        self.repo_dir = os.path.join(self.workdir, "repository")
        self.state_dir = os.path.join(self.workdir, "controller-state")
        self.socket = os.path.join(self.run_dir, "controller.sock")
        self.agent_port = free_port()
        self.components: list[ComponentDecl] = []
        self.controller_extra = ""  # more TOML for controller.toml (e.g. an [import] table)
        self.procs: dict[str, subprocess.Popen] = {}
        self.passphrase_file = os.path.join(self.workdir, "repository.pass")
        self.repository_options: dict = {}  # extra [repository] keys, e.g. {"pack_size_mib": 4}
        self.extra_toml = ""  # more tables for controller.toml, e.g. "[retention]\nkeep_last = 3\n"

    # --- configuration ---------------------------------------------------------------

    def add_component(self, name: str, kind: str, path: str, **extra) -> None:
        self.components.append(ComponentDecl(name, kind, os.path.abspath(path) if path else "", extra))
        if "controller" in self.procs:
            self.restart_controller()

    def add_paths_component(self, name: str, path: str) -> None:
        self.add_component(name, "paths", path)

    @property
    def agent_address(self) -> str:
        """What the agent listens on and the controller dials."""
        return f"unix:{self.agent_socket}" if self.agent_socket else f"127.0.0.1:{self.agent_port}"

    def _tls_block(self, name: str) -> str:
        if self.agent_socket:
            return ""  # nothing listens on TCP
        if self.insecure:
            return "[tls]\ninsecure = true\n"
        return (f"[tls]\nca = {_toml_str(os.path.join(self.pki_dir, 'ca.pem'))}\n"
                f"cert = {_toml_str(os.path.join(self.pki_dir, name + '.pem'))}\n"
                f"key = {_toml_str(os.path.join(self.pki_dir, name + '-key.pem'))}\n")

    def write_configs(self) -> None:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        pki.create_ca(self.pki_dir)
        for name in ("agent", "controller"):
            if not os.path.exists(os.path.join(self.pki_dir, f"{name}.pem")):
                pki.issue(self.pki_dir, name, ["localhost", "127.0.0.1"])
        if not os.path.exists(self.passphrase_file):
            fd = os.open(self.passphrase_file, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, os.urandom(24).hex().encode())
            os.close(fd)
        with open(self.agent_config, "w") as f:
            f.write(f"[agent]\nlisten = {_toml_str(self.agent_address)}\n"
                    f"cache_dir = {_toml_str(os.path.join(self.workdir, 'agent-cache'))}\n"
                    f"staging_dir = {_toml_str(os.path.join(self.workdir, 'agent-staging'))}\n\n"
                    + self._tls_block("agent"))
        with open(self.controller_config, "w") as f:
            f.write(self._controller_toml())

    def _controller_toml(self) -> str:
        out = [f"[controller]\nsocket = {_toml_str(self.socket)}\nstate_dir = {_toml_str(self.state_dir)}\n"]
        if self.s3:
            out.append("[repository]\ntype = \"s3\"\n"
                       f"password_file = {_toml_str(self.passphrase_file)}\n"
                       + "".join(f"{k} = {_toml_value(v)}\n" for k, v in self.repository_options.items())
                       + "\n[repository.s3]\n"
                       + "".join(f"{k} = {_toml_value(v)}\n" for k, v in self.s3.items()))
        else:
            out.append(f"[repository]\ntype = \"local\"\npath = {_toml_str(self.repo_dir)}\n"
                       f"password_file = {_toml_str(self.passphrase_file)}\n"
                       + "".join(f"{k} = {_toml_value(v)}\n" for k, v in self.repository_options.items()))
        out.append(self.extra_toml)
        out.append(self._tls_block("controller"))
        server_name = "" if self.agent_socket else "server_name = \"localhost\"\n"
        out.append(f"[agents.local]\naddress = {_toml_str(self.agent_address)}\n{server_name}")
        for c in self.components:
            extra = "".join(f"{k} = {_toml_value(v)}\n" for k, v in c.extra.items())
            out.append(f"[components.{c.name}]\nkind = \"{c.kind}\"\nagent = \"local\"\n"
                       f"path = {_toml_str(c.path)}\n{extra}")
        if self.controller_extra:
            out.append(self.controller_extra)
        return "\n".join(out)

    @property
    def agent_config(self) -> str:
        return os.path.join(self.workdir, "agent.toml")

    @property
    def controller_config(self) -> str:
        return os.path.join(self.workdir, "controller.toml")

    # --- processes -------------------------------------------------------------------

    def _spawn(self, name: str, module: str, config: str) -> None:
        """Start daemon `name`; RuntimeError if this stack already runs one (it would be left running)."""
        running = self.procs.get(name)
        if running is not None and running.poll() is None:
            raise RuntimeError(f"the {name} of this stack is already running (pid {running.pid}); stop() it first")
        log = open(os.path.join(self.workdir, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", module, "--config", config],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env={**os.environ, **self.env})
        log.close()

    def start(self) -> "LocalStack":
        os.makedirs(self.workdir, exist_ok=True)
        self.write_configs()
        self.start_agent()
        self.start_controller()
        return self

    def start_agent(self) -> None:
        self._spawn("agent", "ragbackup.agent.serve", self.agent_config)
        if self.agent_socket:
            self._wait(lambda: _socket_open(self.agent_socket), "agent socket", "agent")
        else:
            self._wait(lambda: _port_open(self.agent_port), "agent", "agent")

    def start_controller(self) -> None:
        self.write_configs()
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self._spawn("controller", "ragbackup.controller.serve", self.controller_config)
        self._wait(lambda: os.path.exists(self.socket), "controller socket", "controller")

    def restart_controller(self) -> None:
        self.stop_process("controller")
        self.start_controller()

    def _wait(self, ready, what: str, proc: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.procs[proc].poll() is not None:
                raise RuntimeError(f"{proc} exited with {self.procs[proc].returncode}: {self.log_tail(proc)}")
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}: {self.log_tail(proc)}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            with open(os.path.join(self.workdir, f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self.procs.items() if p.poll() is None}

    def kill(self, name: str) -> None:
        """SIGKILL one daemon (crash tests)."""
        p = self.procs.pop(name)
        p.kill()
        p.wait(10)

    def stop_process(self, name: str, grace: float = 15) -> None:
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

    def stop(self) -> None:
        """End the daemons by PID; a short socket directory outside workdir (run_dir) is removed with them."""
        for name in list(self.procs):
            self.stop_process(name)
        if os.path.dirname(self.run_dir) != self.workdir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- ragctl ----------------------------------------------------------------------

    def ragctl_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ragbackup.cli.main", "--socket", self.socket, *args]

    def ragctl(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
        cp = subprocess.run(self.ragctl_argv(*args), capture_output=True, text=True, timeout=timeout)
        if check and cp.returncode != 0:
            raise RuntimeError(f"ragctl {' '.join(args)} exited {cp.returncode}: {cp.stderr.strip()}")
        return cp


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _socket_open(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        return s.connect_ex(path) == 0


def local_stack(workdir: str, **kwargs) -> LocalStack:
    """A LocalStack to use as a context manager: `with local_stack(d) as st: st.ragctl(...)`."""
    return LocalStack(workdir, **kwargs)
