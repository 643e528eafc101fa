"""ragctl's connection to the controller and the rendering of job event streams.

In: the socket path (--socket, $RAG_BACKUP_SOCKET, or the controller config's
[controller] socket). Out: a Controller stub; `run_job` shows progress on a TTY
(stderr) and returns the job's final result, raising the controller's typed error.
"""
from __future__ import annotations

import getpass
import grp
import json
import os
import sys
from typing import Iterator

import grpc

from ragbackup import errors, journal, tls
from ragbackup.controller import audit
from ragbackup.config import CONTROLLER_CONFIG_ENV, DEFAULT_CONTROLLER_CONFIG, load_controller_config
from ragbackup.v1 import controller_pb2, controller_pb2_grpc

SOCKET_ENV = "RAG_BACKUP_SOCKET"
DEFAULT_SOCKET = "/run/rag-backup/controller.sock"


def socket_path(explicit: str | None, config: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get(SOCKET_ENV):
        return os.environ[SOCKET_ENV]
    path = config or os.environ.get(CONTROLLER_CONFIG_ENV)
    if path or os.path.exists(DEFAULT_CONTROLLER_CONFIG):
        try:
            return load_controller_config(path).socket
        except errors.ConfigError:
            if path:
                raise
    return DEFAULT_SOCKET


TRIGGER_ENV = "RAG_BACKUP_TRIGGER"  # what started ragctl (timer, path); recorded with the job


def trigger_metadata() -> tuple[tuple[str, str], ...]:
    trigger = os.environ.get(TRIGGER_ENV, "")
    return (("rag-trigger", trigger),) if trigger else ()


def _group_of(path: str) -> str:
    """The group of the socket, else of the nearest directory on its way this user may stat."""
    while True:
        try:
            gid = os.stat(path).st_gid
            break
        except OSError:
            parent = os.path.dirname(path)
            if parent == path:
                return "?"
            path = parent
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def refused(path: str) -> bool:
    """True when the socket exists but this user may not connect to it; the refusal goes to the
    audit trail, where journald stamps this process's uid (_UID) itself."""
    try:
        os.stat(path)
    except PermissionError:
        pass  # a directory on the way is closed to this user
    except OSError:
        return False
    else:
        if os.access(path, os.R_OK | os.W_OK):
            return False
    journal.send(audit.entry("refused", audit.Caller("unix", uid=os.getuid(), gid=os.getgid(), pid=os.getpid()),
                             "refused", reason="socket permission denied", socket=path, command=" ".join(sys.argv[1:])))
    return True


class Client:
    def __init__(self, socket: str):
        self.socket = socket
        self.channel = grpc.insecure_channel(f"unix:{socket}", options=tls.CHANNEL_OPTIONS)
        self.stub = controller_pb2_grpc.ControllerStub(self.channel)
        self.metadata = (("rag-user", getpass.getuser()),) + trigger_metadata()

    def translate(self, err: grpc.RpcError) -> errors.RagBackupError:
        exc = errors.translate_rpc_error(err, f"controller (unix:{self.socket})")
        if err.code() == grpc.StatusCode.UNAVAILABLE and refused(self.socket):
            return errors.Unavailable(f"permission denied on unix:{self.socket}: only root and members of its "
                                      f"group ({_group_of(self.socket)}) may talk to the controller")
        if err.code() == grpc.StatusCode.UNAVAILABLE and type(exc) is errors.Unavailable:
            return errors.Unavailable(f"cannot reach the controller at unix:{self.socket}: is "
                                      "rag-backup-controller running? (systemctl status rag-backup-controller)")
        return exc

    def call(self, method: str, request, timeout: float | None = 60):
        try:
            return getattr(self.stub, method)(request, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            raise self.translate(err) from None

    def stream(self, method: str, request) -> Iterator[controller_pb2.JobEvent]:
        try:
            yield from getattr(self.stub, method)(request, metadata=self.metadata)
        except grpc.RpcError as err:
            raise self.translate(err) from None


class _Progress:
    """A tqdm bar per phase on a TTY; nothing otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.phase = ""

    def update(self, p: controller_pb2.Progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm
        if p.phase != self.phase:
            self.close()
            self.phase = p.phase
            scale = p.unit == "B"
            self.bar = tqdm(total=p.total or None, desc=p.phase, unit=p.unit or "it", unit_scale=scale,
                            unit_divisor=1024 if scale else 1000, file=sys.stderr, leave=False)
        if p.total and self.bar.total != p.total:
            self.bar.total = p.total
        self.bar.update(p.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_job(events: Iterator[controller_pb2.JobEvent], quiet: bool = False) -> controller_pb2.JobResult | None:
    """Consume a job stream; print logs (stderr) and progress; return the JobResult."""
    progress = _Progress(sys.stderr.isatty() and not quiet)
    result = None
    try:
        for ev in events:
            kind = ev.WhichOneof("kind")
            if kind == "progress":
                progress.update(ev.progress)
            elif kind == "log" and not quiet:
                progress.close()
                print(ev.log, file=sys.stderr)
            elif kind == "result":
                result = ev.result
    finally:
        progress.close()
    return result


def result_details(result: controller_pb2.JobResult | None) -> dict:
    return json.loads(result.details_json) if result and result.details_json else {}


def run_report_job(events: Iterator[controller_pb2.JobEvent], quiet: bool,
                   report_error: type[errors.RagBackupError]) -> tuple[str, dict]:
    """Run a job whose failure still carries a report (verify, repair, drill): (summary, details).

    The job ends with a result event and then fails with `report_error` (its exit code is the
    caller's to return); any other error, or that one without a result, is raised as it is.
    """
    holder: dict = {}

    def watched() -> Iterator[controller_pb2.JobEvent]:
        for ev in events:
            if ev.WhichOneof("kind") == "result":
                holder["result"] = ev.result
            yield ev
    try:
        run_job(watched(), quiet=quiet)
    except report_error:
        if "result" not in holder:
            raise
    result = holder.get("result")
    return (result.summary if result else ""), result_details(result)
