"""In: ServiceSpec values, fake checks, a loopback HTTP server, a DOCKER_HOST that does not exist.
Out: controllers from make_controller, health waits and Unavailable naming the docker socket.
"""
from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ragbackup import errors
from ragbackup.agent.services.base import NoService, ServiceSpec, make_controller
from ragbackup.agent.services.docker import DockerService, aggregate_state
from ragbackup.agent.services.health import http_ok, tcp_ready


def test_spec_validation() -> None:
    with pytest.raises(errors.ConfigError, match="not one of docker, systemd, none"):
        ServiceSpec("kubernetes", "x")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match="needs a name"):
        ServiceSpec("docker", " ")
    assert ServiceSpec("none").name == ""


def test_make_controller() -> None:
    assert isinstance(make_controller(ServiceSpec("none")), NoService)
    docker_ctl = make_controller(ServiceSpec("docker", "rag/redis"))
    assert isinstance(docker_ctl, DockerService)
    assert docker_ctl.describe() == "docker compose service rag/redis"
    assert make_controller(ServiceSpec("docker", "rag-redis-prod")).describe() == "docker container rag-redis-prod"


def test_no_service_is_inert() -> None:
    svc = NoService()
    svc.stop(1), svc.start(), svc.pause(), svc.unpause()
    assert (svc.status(), svc.describe()) == ("running", "no service")


@pytest.mark.parametrize("states, result", [
    ([], "missing"), (["running"], "running"), (["running", "running"], "running"),
    (["running", "stopped"], "stopped"), (["running", "paused"], "paused"), (["stopped"], "stopped"),
])
def test_aggregate_state(states: list[str], result: str) -> None:
    assert aggregate_state(states) == result


def test_unreachable_daemon_is_unavailable_naming_the_socket(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    sock = tmp_path / "no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    svc = DockerService("rag-redis-prod", timeout_s=2)
    for call in (svc.status, svc.start, lambda: svc.stop(1)):
        with pytest.raises(errors.Unavailable, match=str(sock)):
            call()


@pytest.fixture
def http_server() -> Iterator[int]:
    """A loopback HTTP server: /ok answers 200, anything else 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_http_ok_and_tcp_ready(http_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # must be ignored
    assert http_ok(f"http://127.0.0.1:{http_server}/ok")
    assert not http_ok(f"http://127.0.0.1:{http_server}/missing")
    assert tcp_ready("127.0.0.1", http_server)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    assert not tcp_ready("127.0.0.1", closed_port)
    assert not http_ok(f"http://127.0.0.1:{closed_port}/ok", timeout_s=0.5)
