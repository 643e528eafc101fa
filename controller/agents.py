"""The controller's connections to its agents (gRPC clients over mTLS).

In: the [agents] table and [tls] of controller.toml. Out: one stub per agent,
created on first use; connection failures become AgentUnavailable naming the agent.
"""
from __future__ import annotations

import threading

import grpc

from ragbackup import errors, tls, unixsock, wire
from ragbackup.config import ControllerConfig
from ragbackup.v1 import agent_pb2, agent_pb2_grpc

CONNECT_TIMEOUT = 10.0
RESTORE_METHOD = "/ragbackup.v1.Agent/Restore"
CAPTURE_METHOD = "/ragbackup.v1.Agent/Capture"
DRILL_METHOD = "/ragbackup.v1.Agent/Drill"


class AgentStub(agent_pb2_grpc.AgentStub):
    """The generated stub, but Restore's request stream may carry pre-encoded chunk batches (bytes),
    and Capture's chunk batches are parsed without copies (ragbackup.wire)."""

    def __init__(self, channel: grpc.Channel):
        super().__init__(channel)
        self.Restore = channel.stream_unary(
            RESTORE_METHOD, request_serializer=wire.serialize,
            response_deserializer=agent_pb2.RestoreResult.FromString, _registered_method=True)
        self.Capture = channel.stream_stream(
            CAPTURE_METHOD, request_serializer=agent_pb2.CaptureCommand.SerializeToString,
            response_deserializer=wire.chunk_batch_deserializer(agent_pb2.CaptureEvent),
            _registered_method=True)
        self.Drill = channel.stream_unary(  # the Restore stream, into a drill's scratch directory
            DRILL_METHOD, request_serializer=wire.serialize,
            response_deserializer=agent_pb2.DrillResult.FromString, _registered_method=True)


def unreachable_hint(address: str) -> str:
    """What to check when no connection to `address` came up within CONNECT_TIMEOUT."""
    if unixsock.is_unix(address):
        return (f"no connection on the socket within {CONNECT_TIMEOUT:.0f}s: is rag-backup-agent running "
                "with this listen address, and may the controller's user open the socket?")
    return (f"no TLS connection within {CONNECT_TIMEOUT:.0f}s: is rag-backup-agent running, and are its "
            "certificates from the same CA?")


class Agents:
    def __init__(self, cfg: ControllerConfig):
        self._cfg = cfg
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def stub(self, name: str, wait: bool = True) -> agent_pb2_grpc.AgentStub:
        """A stub for agent `name`; with `wait`, first wait up to CONNECT_TIMEOUT for a connection."""
        ref = self._cfg.agents.get(name)
        if ref is None:
            raise errors.ConfigError(f"agent {name!r} is not declared in {self._cfg.source}")
        with self._lock:
            channel = self._channels.get(name)
            if channel is None:
                channel = tls.open_channel(ref.address, self._cfg.tls, ref.server_name)
                self._channels[name] = channel
        if wait:
            try:
                grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT)
            except grpc.FutureTimeoutError:
                raise errors.AgentUnavailable(
                    f"agent {name} at {ref.address} is unreachable ({unreachable_hint(ref.address)})") from None
        return AgentStub(channel)

    def translate(self, name: str, err: grpc.RpcError) -> errors.RagBackupError:
        ref = self._cfg.agents[name]
        exc = errors.translate_rpc_error(err, f"agent {name} ({ref.address})")
        if type(exc) is errors.Unavailable:
            return errors.AgentUnavailable(exc.message)
        return exc

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
