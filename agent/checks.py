"""Per-component health checks run by the agent for `ragctl health`.

In: a ComponentSpec. Out: a CheckResult: the component's options parse and its
`service` exists on this host, then Redis answers PING, Chroma answers its
heartbeat (and whether backups can read facts from their copies), a paths
directory is readable. Never raises; failures are results.
"""
from __future__ import annotations

import os

from ragbackup import errors
from ragbackup.v1 import agent_pb2, common_pb2

from ragbackup.agent import options
from ragbackup.agent.capture import chroma, chroma_facts, redis
from ragbackup.agent.services.base import MISSING, make_controller


def _paths(spec: common_pb2.ComponentSpec) -> tuple[bool, str]:
    if options.Options(spec).container_path() is not None:
        return True, "data inside a container (not checked from the host)"
    if not os.path.isdir(spec.path):
        return False, f"{spec.path} is missing"
    if not os.access(spec.path, os.R_OK | os.X_OK):
        return False, f"{spec.path} is not readable"
    with os.scandir(spec.path) as it:
        n = sum(1 for _ in it)
    return True, f"{spec.path} readable ({n} entries at top level)"


def _redis(spec: common_pb2.ComponentSpec) -> tuple[bool, str]:
    target = options.redis_target(spec)
    client = redis.connect(target)
    try:
        return True, f"PING ok at {target.where}, {client.dbsize()} keys in db0"
    finally:
        client.close()


def _chroma(spec: common_pb2.ComponentSpec) -> tuple[bool, str]:
    """Heartbeat, and whether backups can take facts (chromadb on this host reads the server's files)."""
    target = options.chroma_target(spec)
    chroma.wait_heartbeat(target.url, 3.0)
    engine = chroma_facts.engine_version()
    reason = chroma_facts.unusable_engine(chroma.server_version(target), engine)
    facts = f"backups will record no facts: {reason}" if reason else f"facts read with chromadb {engine}"
    return True, f"heartbeat ok at {target.url}; {facts}"


def _service(spec: common_pb2.ComponentSpec) -> tuple[bool, str] | None:
    """A configured service this host does not have fails the component (its capture or restore would)."""
    service = make_controller(options.Options(spec).service())
    if service.describe() == "no service":
        return None
    try:
        state = service.status()
    except errors.RagBackupError as exc:
        return False, f"option service: {service.describe()} cannot be controlled: {exc.message}"
    if state == MISSING:
        return False, f"option service: {service.describe()} is not found on this agent"
    return None


_CHECKS = {"paths": _paths, "config": _paths, "redis": _redis, "chroma": _chroma}


def check(spec: common_pb2.ComponentSpec) -> agent_pb2.CheckResult:
    fn = _CHECKS.get(spec.kind)
    if fn is None:
        return agent_pb2.CheckResult(name=spec.name, ok=False, detail=f"unknown kind {spec.kind!r}")
    try:
        ok, detail = _service(spec) or fn(spec)
    except errors.RagBackupError as exc:
        ok, detail = False, exc.message
    except OSError as exc:
        ok, detail = False, f"{exc.strerror}: {exc.filename}"
    return agent_pb2.CheckResult(name=spec.name, ok=ok, detail=detail)
