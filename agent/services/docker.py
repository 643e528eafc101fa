"""In: a container name or compose "project/service"; the local daemon (DOCKER_HOST or /var/run/docker.sock).
Out: DockerService (stop/start/pause/status), plus client, error translation and resolution for container_fs.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ragbackup import errors
from ragbackup.lazy import lazy_import
from ragbackup.agent.services.base import MISSING, PAUSED, RUNNING, STOPPED

if TYPE_CHECKING:
    from docker.models.containers import Container

docker = lazy_import("docker")

DOCKER_TIMEOUT_S = 30.0
# How long pause and unpause wait for dockerd to report the state they asked for: the call can
# return while an inspect still shows the container's former state for a moment.
SETTLE_S = 10.0
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"

# Docker container states -> our four states ("missing" is "no such container").
_STATE_MAP = {
    "running": RUNNING, "restarting": RUNNING, "paused": PAUSED,
    "created": STOPPED, "exited": STOPPED, "dead": STOPPED, "removing": STOPPED,
}



def _transport_errors() -> tuple[type[BaseException], ...]:
    """What a broken connection to the daemon raises (the SDK's HTTP stack is imported on first use)."""
    import requests.exceptions
    import urllib3.exceptions
    return (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def daemon_address() -> str:
    """The Docker daemon socket the SDK talks to, for error messages."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


@contextlib.contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """Translate docker/requests errors raised inside the block into typed rag-backup errors about `what`."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise errors.NotFound(f"{what}: not found ({_explain(exc)})") from exc
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise errors.UsageError(f"{what}: conflicts with the container's state: {_explain(exc)}") from exc
        raise errors.Unavailable(f"docker daemon at {daemon_address()}: {what}: {_explain(exc)}") from exc
    except (docker.errors.DockerException, *_transport_errors()) as exc:
        raise errors.Unavailable(f"docker daemon at {daemon_address()} cannot be used for {what}: {exc}") from exc


def _explain(exc: docker.errors.APIError) -> str:
    """The daemon's own message, without the SDK's URL noise."""
    return str(exc.explanation or exc)


def docker_client(timeout_s: float = DOCKER_TIMEOUT_S) -> docker.DockerClient:
    """A client for the local daemon (API version negotiated); every HTTP call is bounded by `timeout_s`."""
    with docker_errors("connect"):
        return docker.from_env(timeout=timeout_s)


def resolve_containers(client: docker.DockerClient, name: str) -> list[Container]:
    """Containers behind `name`: one container, or every replica of a compose "project/service"."""
    if "/" not in name:
        with docker_errors(f"docker container {name}"):
            return [client.containers.get(name)]
    project, service = name.split("/", 1)
    labels = [f"{COMPOSE_PROJECT_LABEL}={project}", f"{COMPOSE_SERVICE_LABEL}={service}"]
    with docker_errors(f"docker compose service {name}"):
        found = client.containers.list(all=True, filters={"label": labels})
    if not found:
        raise errors.NotFound(f"docker compose service {name}: no container has labels {', '.join(labels)}")
    return sorted(found, key=lambda c: c.name)


def resolve_container(client: docker.DockerClient, name: str) -> Container:
    """The single container behind `name`; a compose service scaled to several replicas is a UsageError."""
    found = resolve_containers(client, name)
    if len(found) > 1:
        names = ", ".join(c.name for c in found)
        raise errors.UsageError(f"{name} resolves to {len(found)} containers ({names}); name one of them")
    return found[0]


def container_state(container: Container) -> str:
    """Our state for a container, reloaded from the daemon."""
    with docker_errors(f"docker container {container.name}"):
        container.reload()
    return _STATE_MAP.get(container.status, STOPPED)


def settle(container: Container, reached: Callable[[str], bool], timeout_s: float = SETTLE_S) -> str:
    """The container's state once `reached(state)` holds, or its last state after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    state = container_state(container)
    while not reached(state) and time.monotonic() < deadline:
        time.sleep(0.05)
        state = container_state(container)
    return state


def aggregate_state(states: list[str]) -> str:
    """One state for several replicas: paused if any is paused, running only if all run, else stopped."""
    if not states:
        return MISSING
    if PAUSED in states:
        return PAUSED
    return RUNNING if all(s == RUNNING for s in states) else STOPPED


class DockerService:
    """A docker container or compose service as a ServiceController; the daemon is contacted on first use."""

    def __init__(self, name: str, client: docker.DockerClient | None = None,
                 timeout_s: float = DOCKER_TIMEOUT_S):
        self.name = name
        self._client = client
        self._timeout_s = timeout_s

    def describe(self) -> str:
        """`docker container NAME` or `docker compose service PROJECT/SERVICE`."""
        kind = "compose service" if "/" in self.name else "container"
        return f"docker {kind} {self.name}"

    def client(self) -> docker.DockerClient:
        """The SDK client, created lazily."""
        if self._client is None:
            self._client = docker_client(self._timeout_s)
        return self._client

    def containers(self) -> list[Container]:
        """The containers this service stands for (NotFound when there are none)."""
        return resolve_containers(self.client(), self.name)

    def status(self) -> str:
        """running / stopped / paused, or missing when no container matches."""
        try:
            found = self.containers()
        except errors.NotFound:
            return MISSING
        return aggregate_state([container_state(c) for c in found])

    def stop(self, timeout_s: float) -> None:
        """Stop every container (SIGTERM, SIGKILL after `timeout_s`); stopped ones are left alone."""
        grace = max(0, math.ceil(timeout_s))
        for ct in self.containers():
            if container_state(ct) != STOPPED:
                with docker_errors(f"stop {self.describe()}"):
                    ct.stop(timeout=grace)

    def start(self) -> None:
        """Start stopped containers and unpause paused ones."""
        for ct in self.containers():
            state = container_state(ct)
            with docker_errors(f"start {self.describe()}"):
                if state == PAUSED:
                    ct.unpause()
                    settle(ct, lambda s: s != PAUSED)
                elif state == STOPPED:
                    ct.start()

    def pause(self) -> None:
        """Freeze every container (docker pause); already paused is fine, stopped is a UsageError."""
        for ct in self.containers():
            state = container_state(ct)
            if state == PAUSED:
                continue
            if state != RUNNING:
                raise errors.UsageError(f"cannot pause {self.describe()}: container {ct.name} is {state}")
            with docker_errors(f"pause {self.describe()}"):
                ct.pause()
                settle(ct, lambda s: s == PAUSED)

    def unpause(self) -> None:
        """Unfreeze paused containers; running or stopped ones are left as they are."""
        for ct in self.containers():
            if container_state(ct) == PAUSED:
                with docker_errors(f"unpause {self.describe()}"):
                    ct.unpause()
                    settle(ct, lambda s: s != PAUSED)
