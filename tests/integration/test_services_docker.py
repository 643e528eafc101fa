"""In: a real dockerd, local redis/usrbind images, containers on --network host bound to 127.0.0.1.
Out: lifecycle states, health waits, compose resolution, export/import round trips, exec, typed errors.
"""
from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest
import redis
from fixtures.dockerd import CONTAINER_PREFIX, usrbind_volumes
from fixtures.procs import free_port
from ragbackup import errors
from ragbackup.agent.services.container_fs import exec_in, export_path, import_path
from ragbackup.agent.services.docker import (
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    DockerService,
    resolve_container,
)
from ragbackup.agent.ready import wait_until
from ragbackup.agent.services.health import http_ok, tcp_ready

pytestmark = pytest.mark.docker


def redis_command(port: int) -> list[str]:
    """redis-server on 127.0.0.1:port (0 = unix socket only), data in /data, no automatic snapshots."""
    listen = ["--port", str(port), "--bind", "127.0.0.1"] if port else ["--port", "0", "--unixsocket", "/tmp/r.sock"]
    return ["redis-server", *listen, "--dir", "/data", "--save", "", "--appendonly", "no"]


def redis_client(port: int) -> redis.Redis:
    """A client that fails fast: redis-py 6+ retries timeouts by default (a paused server took ~10 s)."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=None)


def wait_redis(port: int, timeout_s: float = 15) -> float:
    """Wait for TCP, then for PING; return seconds."""
    waited = wait_until(lambda: tcp_ready("127.0.0.1", port), timeout_s, f"redis port {port}")
    return waited + wait_until(lambda: not ping_fails(port), timeout_s, f"redis PING :{port}")


def ping_fails(port: int) -> bool:
    try:
        redis_client(port).ping()
    except redis.exceptions.RedisError:
        return True
    return False


@pytest.fixture
def redis_ct(container_factory, redis_image, tmp_path):
    """A redis container with a bind-mounted data dir on a free loopback port: (container, port, data_dir)."""
    port, data = free_port(), tmp_path / "redis-data"
    data.mkdir()
    ct = container_factory(redis_image, redis_command(port), label="redis",
                           volumes={str(data): {"bind": "/data", "mode": "rw"}})
    wait_redis(port)
    return ct, port, data


def test_redis_lifecycle_stop_start_pause_unpause(redis_ct) -> None:
    ct, port, data = redis_ct
    svc = DockerService(ct.name)
    assert (svc.status(), svc.describe()) == ("running", f"docker container {ct.name}")
    redis_client(port).set("k", "v1")

    svc.pause()
    svc.pause()  # idempotent
    assert svc.status() == "paused"
    assert ping_fails(port)
    with pytest.raises(errors.UsageError, match="paused; unpause it first"):
        exec_in(ct.name, ["redis-cli", "-p", str(port), "PING"], 5)
    svc.unpause()
    svc.unpause()  # idempotent
    assert svc.status() == "running" and redis_client(port).ping()

    assert redis_client(port).save()
    svc.stop(timeout_s=10)
    svc.stop(timeout_s=10)  # idempotent
    assert svc.status() == "stopped" and not tcp_ready("127.0.0.1", port)
    assert (data / "dump.rdb").exists()
    with pytest.raises(errors.UsageError, match="cannot pause .* is stopped"):
        svc.pause()
    svc.unpause()  # not frozen: nothing to do

    svc.start()
    svc.start()  # idempotent
    wait_redis(port)
    assert svc.status() == "running" and redis_client(port).get("k") == b"v1"


def test_start_unpauses_and_stop_works_on_a_paused_container(redis_ct) -> None:
    ct, port, _ = redis_ct
    svc = DockerService(ct.name)
    svc.pause()
    svc.start()
    assert svc.status() == "running" and redis_client(port).ping()
    svc.pause()
    svc.stop(timeout_s=5)
    assert svc.status() == "stopped"


def test_missing_container(docker_engine) -> None:
    name = f"{CONTAINER_PREFIX}does-not-exist"
    svc = DockerService(name)
    assert svc.status() == "missing"
    for call in (svc.start, svc.pause, lambda: svc.stop(1)):
        with pytest.raises(errors.NotFound, match=f"docker container {name}"):
            call()
    with pytest.raises(errors.NotFound, match=name):
        export_path(name, "/data", "/nonexistent-never-created")


def test_compose_service_resolution_by_labels(container_factory, redis_image) -> None:
    project = f"{CONTAINER_PREFIX}proj"

    def compose(service: str, number: int):
        labels = {COMPOSE_PROJECT_LABEL: project, COMPOSE_SERVICE_LABEL: service,
                  "com.docker.compose.container-number": str(number)}
        return container_factory(redis_image, redis_command(0), label=f"{service}-{number}", labels=labels)

    cache, worker1, worker2 = compose("cache", 1), compose("worker", 1), compose("worker", 2)
    cache_svc = DockerService(f"{project}/cache")
    assert cache_svc.describe() == f"docker compose service {project}/cache"
    assert [c.name for c in cache_svc.containers()] == [cache.name]
    assert cache_svc.status() == "running"
    cache_svc.stop(timeout_s=5)
    assert cache_svc.status() == "stopped"
    worker1.reload()
    assert worker1.status == "running"  # the other service is untouched
    cache_svc.start()
    assert cache_svc.status() == "running"

    workers = DockerService(f"{project}/worker")
    assert [c.name for c in workers.containers()] == sorted([worker1.name, worker2.name])
    workers.pause()
    assert workers.status() == "paused"
    workers.unpause()
    worker2.stop(timeout=5)
    assert workers.status() == "stopped"  # a replica is down
    with pytest.raises(errors.UsageError, match="resolves to 2 containers"):
        resolve_container(workers.client(), f"{project}/worker")

    gone = DockerService(f"{project}/nope")
    assert gone.status() == "missing"
    with pytest.raises(errors.NotFound, match=f"compose service {project}/nope"):
        gone.start()


def seed_plain_data(container_name: str, port: int) -> None:
    """Keys in redis plus a small tree with owners, modes and a symlink, in the container's own /data."""
    r = redis_client(port)
    r.mset({f"key:{i}": f"value-{i}" for i in range(100)})
    assert r.save()
    script = ("mkdir -p /data/docs/sub && echo hello > /data/docs/sub/a.txt && chown -R 999:999 /data/docs "
              "&& chmod 640 /data/docs/sub/a.txt && ln -s sub/a.txt /data/docs/link && chmod 750 /data")
    code, out = exec_in(container_name, ["sh", "-c", script], timeout_s=10)
    assert code == 0, out


def test_export_from_plain_container_path_and_import_into_fresh_stopped_container(
        container_factory, redis_image, tmp_path) -> None:
    port = free_port()
    src = container_factory(redis_image, redis_command(port), label="src")  # /data is NOT a mount
    wait_redis(port)
    seed_plain_data(src.name, port)

    export = tmp_path / "export"
    started = time.monotonic()
    stats = export_path(src.name, "/data", export)
    export_s = time.monotonic() - started
    assert sorted(str(p.relative_to(export)) for p in export.rglob("*")) == [
        "docs", "docs/link", "docs/sub", "docs/sub/a.txt", "dump.rdb"]
    assert stats.entries == 5 and stats.bytes == os.path.getsize(export / "dump.rdb") + 6
    a_txt = os.stat(export / "docs" / "sub" / "a.txt")
    assert (a_txt.st_uid, a_txt.st_gid, stat.S_IMODE(a_txt.st_mode)) == (999, 999, 0o640)
    assert stat.S_IMODE(os.stat(export).st_mode) == 0o750  # /data's own mode
    assert os.readlink(export / "docs" / "link") == "sub/a.txt"
    assert export_s < 10

    # A single file lands as dest/<name>; paused and stopped containers can be read too.
    DockerService(src.name).pause()
    export_path(src.name, "/data/dump.rdb", tmp_path / "one")
    DockerService(src.name).stop(timeout_s=5)
    export_path(src.name, "/data/docs", tmp_path / "stopped")
    assert (tmp_path / "one" / "dump.rdb").read_bytes() == (export / "dump.rdb").read_bytes()
    assert (tmp_path / "stopped" / "sub" / "a.txt").read_text() == "hello\n"

    port2 = free_port()
    dst = container_factory(redis_image, redis_command(port2), label="dst", start=False)
    imported = import_path(dst.name, export, "/data")
    assert (imported.entries, imported.bytes) == (stats.entries, stats.bytes)
    dst.start()
    wait_redis(port2)
    r = redis_client(port2)
    assert r.dbsize() == 100 and r.get("key:42") == b"value-42"
    code, out = exec_in(dst.name, ["stat", "-c", "%u:%g %a %n", "/data", "/data/docs/sub/a.txt"], 10)
    assert code == 0 and out.decode().splitlines() == ["0:0 750 /data", "999:999 640 /data/docs/sub/a.txt"]
    code, out = exec_in(dst.name, ["cat", "/data/docs/link"], 10)
    assert (code, out) == (0, b"hello\n")

    # Restore into a stopped container whose /data is a bind mount: the files land on the host dir.
    port3, bound = free_port(), tmp_path / "bound"
    bound.mkdir()
    dst2 = container_factory(redis_image, redis_command(port3), label="dst2", start=False,
                             volumes={str(bound): {"bind": "/data", "mode": "rw"}})
    import_path(dst2.name, export, "/data")
    a_txt = os.stat(bound / "docs" / "sub" / "a.txt")
    assert (a_txt.st_uid, a_txt.st_gid, stat.S_IMODE(a_txt.st_mode)) == (999, 999, 0o640)
    assert abs(a_txt.st_mtime_ns - os.stat(export / "docs" / "sub" / "a.txt").st_mtime_ns) < 1000  # float µs
    dst2.start()
    wait_redis(port3)
    assert redis_client(port3).dbsize() == 100


def test_import_path_errors(redis_ct, tmp_path) -> None:
    ct, _, _ = redis_ct
    with pytest.raises(errors.UsageError, match="absolute path below /"):
        import_path(ct.name, tmp_path, "/")
    with pytest.raises(errors.NotFound, match="not a directory"):
        import_path(ct.name, tmp_path / "missing", "/data")
    (tmp_path / "src").mkdir()
    with pytest.raises(errors.NotFound):
        import_path(ct.name, tmp_path / "src", "/no/such/parent/dir")


def test_exec_in_output_exit_code_and_timeout(redis_ct) -> None:
    ct, port, _ = redis_ct
    assert exec_in(ct.name, ["redis-cli", "-p", str(port), "PING"], 10) == (0, b"PONG\n")
    code, out = exec_in(ct.name, ["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
    assert code == 3 and b"out\n" in out and b"err\n" in out
    code, out = exec_in(ct.name, ["sh", "-c", 'echo "$SECRET_VAR"'], 10, env={"SECRET_VAR": "s3cr3t"})
    assert (code, out) == (0, b"s3cr3t\n")
    started = time.monotonic()
    with pytest.raises(errors.Unavailable, match="did not finish within 0.5s"):
        exec_in(ct.name, ["sleep", "30"], 0.5)
    assert time.monotonic() - started < 5
    code, _ = exec_in(ct.name, ["/no/such/binary"], 10)
    assert code in (126, 127)


def chroma_binary() -> Path:
    return Path(sys.prefix) / "bin" / "chroma"


@pytest.mark.chroma
@pytest.mark.skipif(not chroma_binary().exists(), reason="chromadb is not installed in this venv")
def test_chroma_in_usrbind_container_health_pause_unpause(container_factory, usrbind_image, tmp_path) -> None:
    port = free_port()
    command = [str(chroma_binary()), "run", "--path", "/data", "--host", "127.0.0.1", "--port", str(port)]
    ct = container_factory(usrbind_image, command, label="chroma", volumes=usrbind_volumes(),
                           environment={"ANONYMIZED_TELEMETRY": "False"})
    heartbeat = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    waited = wait_until(lambda: http_ok(heartbeat), 60, f"chroma heartbeat on :{port}")
    assert waited < 60

    svc = DockerService(ct.name)
    svc.pause()
    assert svc.status() == "paused"
    assert not http_ok(heartbeat, timeout_s=0.5)
    stats = export_path(ct.name, "/data", tmp_path / "chroma")  # consistent copy while frozen
    svc.unpause()
    wait_until(lambda: http_ok(heartbeat), 10, "chroma heartbeat after unpause")
    assert (tmp_path / "chroma" / "chroma.sqlite3").exists() and stats.bytes > 0
