"""In: a ServiceSpec from agent config (backend docker|systemd|none + name).
Out: a ServiceController that capture/restore stop/start/pause, then wait on with services.health.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ragbackup import errors

Backend = Literal["docker", "systemd", "none"]
BACKENDS: tuple[str, ...] = ("docker", "systemd", "none")

# The four states every controller reports.
RUNNING = "running"
STOPPED = "stopped"
PAUSED = "paused"
MISSING = "missing"
STATES: tuple[str, ...] = (RUNNING, STOPPED, PAUSED, MISSING)


class ServiceController(Protocol):
    """The narrow interface capture and restore use; every call is idempotent."""

    def stop(self, timeout_s: float) -> None:
        """Stop the service, waiting at most about `timeout_s` for it to exit."""

    def start(self) -> None:
        """Start the service (and unfreeze it if paused)."""

    def pause(self) -> None:
        """Freeze the service's processes so its files stop changing."""

    def unpause(self) -> None:
        """Let a frozen service run again; a no-op when it is not frozen."""

    def status(self) -> str:
        """One of "running", "stopped", "paused", "missing"."""

    def describe(self) -> str:
        """A short human name for logs and errors, e.g. `docker container rag-redis-prod`."""


@dataclass(frozen=True)
class ServiceSpec:
    """Which service guards a component: backend plus container name, systemd unit or compose "project/service"."""

    backend: Backend
    name: str = ""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise errors.ConfigError(
                f"service backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.backend != "none" and not self.name.strip():
            raise errors.ConfigError(f"service backend {self.backend!r} needs a name")


class NoService:
    """Backend "none": nothing to control; every call is a no-op and status is always running."""

    def stop(self, timeout_s: float) -> None:
        """Nothing to stop."""

    def start(self) -> None:
        """Nothing to start."""

    def pause(self) -> None:
        """Nothing to pause."""

    def unpause(self) -> None:
        """Nothing to unpause."""

    def status(self) -> str:
        """Always "running": there is no service whose state could block capture or restore."""
        return RUNNING

    def describe(self) -> str:
        """Names the absence of a service."""
        return "no service"


def make_controller(spec: ServiceSpec) -> ServiceController:
    """Build the controller for `spec`; imports the backend lazily so `none` needs neither docker nor systemctl."""
    if spec.backend == "docker":
        from ragbackup.agent.services.docker import DockerService

        return DockerService(spec.name)
    if spec.backend == "systemd":
        from ragbackup.agent.services.systemd import SystemdService

        return SystemdService(spec.name)
    return NoService()
