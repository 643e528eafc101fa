"""rag-backup-agent: the per-host daemon serving capture, restore and health over gRPC (mTLS or a unix socket).

In: agent.toml (--config, $RAG_BACKUP_AGENT_CONFIG, or /etc/rag-backup/agent.toml).
Out: a gRPC server on [agent] listen; READY/STATUS/STOPPING sent to systemd.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from concurrent import futures

import grpc
import sdnotify

from ragbackup import __version__, errors, logs, tls, unixsock, wire
from ragbackup.memory import tune_malloc
from ragbackup.config import AgentConfig, load_agent_config
from ragbackup.rpc import ErrorInterceptor
from ragbackup.v1 import agent_pb2, agent_pb2_grpc

from ragbackup.agent.servicer import AgentServicer

log = logging.getLogger("ragbackup.agent")


SERVICE = "ragbackup.v1.Agent"
SOCKET_GROUP = "rag-backup"  # may connect to a unix-socket listener


class _HandlerTable:
    """Receives the generated registration's method table instead of a server."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.handlers.update(handlers)


def add_agent_service(servicer: AgentServicer, server: grpc.Server) -> None:
    """The generated registration, except that Capture's responses may be pre-encoded bytes and
    Restore's chunk batches are parsed without copies (ragbackup.wire)."""
    table = _HandlerTable()
    agent_pb2_grpc.add_AgentServicer_to_server(servicer, table)
    handlers = table.handlers
    capture = handlers["Capture"]
    handlers["Capture"] = grpc.stream_stream_rpc_method_handler(
        capture.stream_stream, request_deserializer=capture.request_deserializer, response_serializer=wire.serialize)
    restore = handlers["Restore"]
    handlers["Restore"] = grpc.stream_unary_rpc_method_handler(
        restore.stream_unary, request_deserializer=wire.chunk_batch_deserializer(agent_pb2.RestoreCommand),
        response_serializer=restore.response_serializer)
    drill = handlers["Drill"]  # the Restore stream, into a drill's scratch directory
    handlers["Drill"] = grpc.stream_unary_rpc_method_handler(
        drill.stream_unary, request_deserializer=wire.chunk_batch_deserializer(agent_pb2.RestoreCommand),
        response_serializer=drill.response_serializer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


def create_server(cfg: AgentConfig, address: str | None = None) -> tuple[grpc.Server, int]:
    """Build (not start) the agent server; returns (server, bound port). Port 0 picks a free one."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="rpc"),
                         interceptors=[ErrorInterceptor()], options=tls.CHANNEL_OPTIONS)
    add_agent_service(AgentServicer(cfg), server)
    address = address or cfg.listen
    if unixsock.is_unix(address):
        unixsock.prepare(unixsock.path_of(address))
    creds = tls.server_credentials(cfg.tls, address)
    if creds is None:
        log.warning("INSECURE: [tls] insecure = true: the agent accepts unauthenticated, unencrypted calls "
                    "on %s; use this for loopback development only", address)
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, creds)
    if port == 0:
        raise errors.ConfigError(f"{cfg.source}: cannot listen on {address}")
    return server, port


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rag-backup-agent",
        description="rag-backup agent: captures and restores components on this host when the "
                    "rag-backup controller asks (gRPC with mutual TLS, or a unix socket on the controller's host).",
        epilog="Exit codes: 0 stopped cleanly, 3 configuration error, 1 other failure.")
    p.add_argument("--config", help="agent TOML file (default: $RAG_BACKUP_AGENT_CONFIG or "
                                    "/etc/rag-backup/agent.toml)")
    p.add_argument("--listen", help="override [agent] listen (host:port, or unix:PATH on the controller's host)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--version", action="version", version=f"rag-backup-agent {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    tune_malloc()
    logs.setup(args.verbose, "rag-backup-agent")
    try:
        cfg = load_agent_config(args.config)
        server, port = create_server(cfg, args.listen)
    except errors.RagBackupError as exc:
        log.error("%s", exc.message)
        return exc.exit_code
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    where = args.listen or cfg.listen
    if unixsock.is_unix(where):
        unixsock.restrict(unixsock.path_of(where), SOCKET_GROUP)
    else:
        where = f"port {port}"
    log.info("rag-backup-agent %s listening on %s", __version__, where)
    notifier = sdnotify.SystemdNotifier()
    notifier.notify(f"READY=1\nSTATUS=listening on {where}")
    while not stop.wait(5):
        notifier.notify("WATCHDOG=1")
    notifier.notify("STOPPING=1")
    server.stop(grace=5).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
