"""Per-component health checks run by the agent for `ragctl health`.

In: a ComponentSpec. Out: a CheckResult: the component's options are for its kind and its
`service` exists on this host, then the kind's own check (agent/kinds/*: Redis answers PING,
Chroma its heartbeat and whether backups can read facts from their copies, a paths directory
is readable). Never raises; failures are results.
"""
from __future__ import annotations

from ragbackup import errors
from ragbackup.v1 import agent_pb2, common_pb2

from ragbackup.agent.component import Component
from ragbackup.agent.kinds.registry import kind_of
from ragbackup.agent.services.base import MISSING, make_controller


def _service(comp: Component) -> tuple[bool, str] | None:
    """A configured service this host does not have fails the component (its capture or restore would)."""
    service = make_controller(comp.service())
    if service.describe() == "no service":
        return None
    try:
        state = service.status()
    except errors.RagBackupError as exc:
        return False, f"option service: {service.describe()} cannot be controlled: {exc.message}"
    if state == MISSING:
        return False, f"option service: {service.describe()} is not found on this agent"
    return None


def _check(spec: common_pb2.ComponentSpec) -> tuple[bool, str]:
    comp = Component.of(spec)
    health = kind_of(comp).health
    return _service(comp) or health(comp)


def check(spec: common_pb2.ComponentSpec) -> agent_pb2.CheckResult:
    try:
        ok, detail = _check(spec)
    except errors.RagBackupError as exc:
        ok, detail = False, exc.message
    except OSError as exc:
        ok, detail = False, f"{exc.strerror}: {exc.filename}"
    return agent_pb2.CheckResult(name=spec.name, ok=ok, detail=detail)
