"""rag-backup-controller: the central daemon owning the repository, catalog and jobs.

In: controller.toml (--config, $RAG_BACKUP_CONTROLLER_CONFIG, or
/etc/rag-backup/controller.toml). Out: the Controller API on a unix socket (0660,
relayed by peercred.Relay so every call carries its caller's kernel credentials) and optionally on TCP with mTLS; READY/STATUS/WATCHDOG/STOPPING to systemd.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from concurrent import futures

import grpc

from ragbackup import __version__, errors, logs, notify, tls, unixsock
from ragbackup.memory import tune_malloc
from ragbackup.config import ControllerConfig, load_controller_config
from ragbackup.rpc import ErrorInterceptor
from ragbackup.v1 import controller_pb2_grpc

from ragbackup.controller import metrics, peercred
from ragbackup.controller.audit import INTERNAL
from ragbackup.controller.jobs.records import JobRecord
from ragbackup.controller.jobs.runner import Runner, open_runner
from ragbackup.controller.policy.schedule import rpo_findings
from ragbackup.controller.replication_loop import Replicator
from ragbackup.controller.lockkeep_loop import LockKeeper, check_locked_tiers
from ragbackup.controller.status import Watch
from ragbackup.controller.servicer import ControllerServicer
from ragbackup.controller.state import Controller

log = logging.getLogger("ragbackup.controller")


def create_server(cfg: ControllerConfig, ctl: Controller, runner: Runner,
                  pool: futures.ThreadPoolExecutor | None = None,
                  replicator: Replicator | None = None) -> tuple[grpc.Server, int]:
    """Build (not start) the server on the unix socket and [controller] listen; returns (server, tcp port).
    `pool` serves the calls (the watchdog probes through it); a new one of 16 threads by default.
    `replicator`, when given, hears from `ragctl health` of a tier answering again with work queued."""
    areas = {cfg.state_dir: "state_dir"}
    if cfg.repository.type == "local":
        areas[cfg.repository.path] = "repository"
    server = grpc.server(pool or futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="rpc"),
                         interceptors=[ErrorInterceptor(areas)], options=tls.CHANNEL_OPTIONS)
    controller_pb2_grpc.add_ControllerServicer_to_server(
        ControllerServicer(ctl, runner, tier_back=replicator.tier_back if replicator else None), server)
    private = peercred.private_path(cfg.socket)
    if unixsock.problem(f"unix:{private}"):
        raise errors.ConfigError(f"{cfg.source}: [controller] socket {cfg.socket}: {unixsock.problem('unix:' + private)}")
    peercred.prepare_private(private)
    if server.add_insecure_port(f"unix:{private}") == 0:
        raise errors.ConfigError(f"{cfg.source}: cannot listen on unix socket {private}")
    port = 0
    if cfg.listen:
        creds = tls.server_credentials(cfg.tls)
        port = server.add_secure_port(cfg.listen, creds) if creds else server.add_insecure_port(cfg.listen)
        if port == 0:
            raise errors.ConfigError(f"{cfg.source}: cannot listen on {cfg.listen}")
    return server, port


def _start_relay(cfg: ControllerConfig, runner: Runner) -> peercred.Relay:
    """The public socket: ragctl connects to the relay, which names each caller from the kernel (peercred.py)."""
    relay = peercred.Relay(cfg.socket, peercred.private_path(cfg.socket), cfg.socket_group, runner.audit)
    try:
        relay.start()
    except OSError as exc:
        raise errors.ConfigError(f"{cfg.source}: cannot listen on unix socket {cfg.socket}: "
                                 f"{exc.strerror or exc}") from None
    runner.audit.record("daemon-start", INTERNAL, "ok", config=cfg.source, socket=cfg.socket,
                        listen=cfg.listen or "-", version=__version__)
    return relay


def _start_monitoring(cfg: ControllerConfig, runner: Runner, stop: threading.Event):
    """Alert evaluation (after every job and every 30 s) and, with [metrics] listen, /metrics and the status page."""
    watch = Watch(cfg, runner.records, runner.audit, runner.clock)
    runner.on_finish(watch.after_job)
    watch.run(stop)
    if not cfg.metrics.listen:
        return None
    try:
        http, port = metrics.serve(cfg.metrics.listen, watch)
    except OSError as exc:
        raise errors.ConfigError(f"{cfg.source}: [metrics] listen: cannot listen on {cfg.metrics.listen}: "
                                 f"{exc.strerror or exc}") from None
    log.info("metrics and status page on http://%s:%d/", cfg.metrics.listen.rpartition(":")[0], port)
    return http


class Status:
    """The STATUS line systemd shows: where the controller serves and which job runs now."""

    def __init__(self, notifier: notify.Notifier, runner: Runner, where: str):
        self.notifier, self.runner, self.where = notifier, runner, where
        self.last = ""

    def text(self) -> str:
        running = self.runner.running_jobs()
        if running:
            jobs = ", ".join(f"{r.kind} job {r.id} ({r.trigger})" for r in running)
            return f"serving on {self.where}; running {jobs}"
        return f"serving on {self.where}; idle" + (f"; last {self.last}" if self.last else "")

    def started(self, rec: JobRecord) -> None:
        self.notifier.status(self.text())

    def finished(self, rec: JobRecord) -> None:
        self.last = f"{rec.kind} job {rec.id} {rec.result}"
        self.notifier.status(self.text())


def announce_objectives(cfg: ControllerConfig, runner: Runner) -> list[str]:
    """At start: say (log and audit) when the schedule cannot meet the RPO."""
    findings = rpo_findings(cfg.schedule, cfg.objectives)
    for finding in findings:
        log.warning("%s", finding)
        runner.audit.record("objectives", "controller", "failed", check="schedule-vs-rpo", detail=finding)
    return findings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rag-backup-controller",
        description="rag-backup controller: owns the repository, catalog and schedule; ragctl talks to it "
                    "over a unix socket; it talks to agents over gRPC with mutual TLS.",
        epilog="Exit codes: 0 stopped cleanly, 3 configuration error, 1 other failure.")
    p.add_argument("--config", help="controller TOML (default: $RAG_BACKUP_CONTROLLER_CONFIG or "
                                    "/etc/rag-backup/controller.toml)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--version", action="version", version=f"rag-backup-controller {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    tune_malloc()
    logs.setup(args.verbose, "rag-backup-controller")
    pool = futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="rpc")
    try:
        cfg = load_controller_config(args.config)
        ctl = Controller(cfg)
        check_locked_tiers(cfg)  # a locked tier on a bucket without object lock: StateError, exit 3
        runner = open_runner(ctl)
        replicator = Replicator(runner)  # after every backup, and catching up after outages and restarts
        server, port = create_server(cfg, ctl, runner, pool, replicator)
    except errors.RagBackupError as exc:
        log.error("%s", exc.message)
        return exc.exit_code
    if cfg.tls.insecure:
        log.warning("INSECURE: [tls] insecure = true: agent connections are not authenticated; "
                    "use this for loopback development only")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    try:
        relay = _start_relay(cfg, runner)
        http = _start_monitoring(cfg, runner, stop)
    except errors.RagBackupError as exc:
        log.error("%s", exc.message)
        server.stop(0)
        return exc.exit_code
    log.info("rag-backup-controller %s on unix:%s%s", __version__, cfg.socket, f" and port {port}" if port else "")
    announce_objectives(cfg, runner)
    notifier = notify.Notifier()
    status = Status(notifier, runner, cfg.socket)
    runner.on_start(status.started)
    runner.on_finish(status.finished)
    runner.on_finish(replicator.after_job)
    replicator.start(stop)
    LockKeeper(runner).start(stop)  # extends object-lock retention of locked tiers (docs/OFFSITE.md)
    notifier.ready(status.text())  # only now: the socket listens and has its group and mode
    notify.Watchdog(notifier, pool, runner.probe).run(stop)
    notifier.stopping()
    relay.stop()
    server.stop(grace=10).wait()
    if http is not None:
        http.shutdown()
    runner.audit.record("daemon-stop", INTERNAL, "ok", config=cfg.source)
    runner.close()
    ctl.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
