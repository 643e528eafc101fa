"""Storage, state and configuration failures reach ragctl as typed errors (real daemons, real mounts).

A read-only or full repository volume, a repository or state_dir below a regular file,
a state_dir gone read-only: each exits with its documented code (4 repository, 3
configuration), names the path and the operation, leaves no snapshot behind and puts no
traceback in ragctl's output or the daemons' logs. Mounts need root; they are always
unmounted. Also: `ragctl init` creates a missing S3 bucket; restore --dry-run refuses
what the restore refuses, with the same exit code; health names a service that cannot work.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fixtures.stack import ragctl_output, snapshot_ids
from ragbackup.errors import ConfigError, RepositoryError, UsageError
from ragbackup.localstack import LocalStack

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")


@contextlib.contextmanager
def mounted(*argv: str, target: str) -> Iterator[None]:
    """`mount ARGV TARGET`, always unmounted afterwards."""
    subprocess.run(["mount", *argv, target], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


@contextlib.contextmanager
def read_only(path: str) -> Iterator[None]:
    """`path` bind-mounted onto itself read-only."""
    with mounted("--bind", path, target=path):
        subprocess.run(["mount", "-o", "remount,bind,ro", path], check=True, capture_output=True)
        yield


def assert_clean(stack: LocalStack, cp) -> None:
    """No traceback in ragctl's output or in either daemon's log."""
    assert "Traceback" not in cp.stdout + cp.stderr, ragctl_output(cp)
    for proc in ("controller", "agent"):
        log = stack.log_tail(proc, 400)
        assert "Traceback" not in log, f"{proc}.log:\n{log}"


def docs_dir(tmp_path, size: int = 0) -> str:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("hello\n")
    if size:
        (docs / "big.bin").write_bytes(os.urandom(size))
    return str(docs)


@needs_root
def test_read_only_repository_is_a_repository_error(make_stack, tmp_path):
    docs = docs_dir(tmp_path)
    st = make_stack({"documents": docs})
    st.ragctl("backup")
    with open(os.path.join(docs, "new.txt"), "w") as f:
        f.write("new data to store\n")
    before = snapshot_ids(st)
    with read_only(st.repo_dir):
        cp = st.ragctl("backup", check=False)
    assert cp.returncode == RepositoryError.exit_code, ragctl_output(cp)
    assert "repository: cannot" in cp.stderr and st.repo_dir in cp.stderr, ragctl_output(cp)
    assert "Read-only file system (EROFS)" in cp.stderr, ragctl_output(cp)
    assert snapshot_ids(st) == before
    assert_clean(st, cp)


@needs_root
def test_full_repository_volume_is_no_space(tmp_path):
    docs = docs_dir(tmp_path, size=6 * 1024 * 1024)  # random: does not compress below the 2 MiB volume
    st = LocalStack(str(tmp_path / "stack"))
    st.add_paths_component("documents", docs)
    os.makedirs(st.repo_dir)
    with mounted("-t", "tmpfs", "-o", "size=2m", "tmpfs", target=st.repo_dir), st:
        st.ragctl("init")
        cp = st.ragctl("backup", check=False)
        assert cp.returncode == RepositoryError.exit_code, ragctl_output(cp)
        assert "repository: cannot" in cp.stderr and "(ENOSPC)" in cp.stderr, ragctl_output(cp)
        assert st.repo_dir in cp.stderr, ragctl_output(cp)
        assert snapshot_ids(st) == []
        assert_clean(st, cp)


def test_repository_below_a_regular_file(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    st = LocalStack(str(tmp_path / "stack"))
    st.repo_dir = str(blocker / "repository")
    st.add_paths_component("documents", docs_dir(tmp_path))
    with st:
        cp = st.ragctl("init", check=False)
        assert cp.returncode == RepositoryError.exit_code, ragctl_output(cp)
        assert f"repository: cannot write {st.repo_dir}/" in cp.stderr, ragctl_output(cp)
        assert "Not a directory (ENOTDIR)" in cp.stderr, ragctl_output(cp)
        assert_clean(st, cp)


def test_state_dir_below_a_regular_file_stops_the_controller_with_exit_3(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    st = LocalStack(str(tmp_path / "stack"))
    st.state_dir = str(blocker / "state")
    os.makedirs(st.workdir)
    st.write_configs()
    cp = subprocess.run([sys.executable, "-m", "ragbackup.controller.serve", "--config", st.controller_config],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == ConfigError.exit_code, cp.stderr
    assert f"state_dir: cannot create {st.state_dir}: Not a directory (ENOTDIR)" in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr


@needs_root
def test_read_only_state_dir_is_a_configuration_error(make_stack, tmp_path):
    st = make_stack({"documents": docs_dir(tmp_path)})
    st.ragctl("backup")
    with read_only(st.state_dir):
        cp = st.ragctl("backup", check=False)
        reads = [st.ragctl(*argv, check=False) for argv in (("snapshots",), ("show", "latest"), ("verify",))]
    for r in reads:
        assert r.returncode == 0, ragctl_output(r)  # reading needs no write to the state_dir
    assert cp.returncode == ConfigError.exit_code, ragctl_output(cp)
    assert "state_dir: cannot" in cp.stderr and st.state_dir in cp.stderr, ragctl_output(cp)
    assert "(EROFS)" in cp.stderr or "readonly" in cp.stderr, ragctl_output(cp)
    assert_clean(st, cp)


@needs_root
@pytest.mark.s3
def test_full_state_dir_of_an_s3_repository_is_no_space(tmp_path, s3_server, s3_bucket):
    """With an S3 repository, packs are staged in the state_dir: that volume filling up is exit 3."""
    st = LocalStack(str(tmp_path / "stack"), s3={
        "endpoint_url": s3_server.endpoint_url, "bucket": s3_bucket, "region": s3_server.region,
        "access_key_id": s3_server.access_key, "secret_access_key": s3_server.secret_key})
    st.add_paths_component("documents", docs_dir(tmp_path, size=6 * 1024 * 1024))
    os.makedirs(st.state_dir)
    with mounted("-t", "tmpfs", "-o", "size=2m", "tmpfs", target=st.state_dir), st:
        st.ragctl("init")
        cp = st.ragctl("backup", check=False)
        assert cp.returncode == ConfigError.exit_code, ragctl_output(cp)
        # Packs and the spooled tree share staging/: whichever write comes first meets the full disk.
        assert re.search(rf"state_dir: cannot (write a pack in|spool the tree to) {re.escape(st.state_dir)}/staging",
                         cp.stderr), ragctl_output(cp)
        assert "(ENOSPC)" in cp.stderr, ragctl_output(cp)
        assert snapshot_ids(st) == []
        assert_clean(st, cp)


@pytest.mark.s3
def test_init_creates_a_missing_bucket(make_stack, tmp_path, s3_server):
    bucket = "created-by-ragctl-init"
    s3 = {"endpoint_url": s3_server.endpoint_url, "bucket": bucket, "region": s3_server.region,
          "access_key_id": s3_server.access_key, "secret_access_key": s3_server.secret_key,
          "connect_timeout": 2, "read_timeout": 30.0}
    st = make_stack({"documents": docs_dir(tmp_path)}, s3=s3, init=False)
    cp = st.ragctl("init", check=False)
    assert cp.returncode == 0, ragctl_output(cp)
    s3_server.client().head_bucket(Bucket=bucket)
    assert json.loads(st.ragctl("backup", "--json").stdout)["id"] in snapshot_ids(st)


def test_dry_run_refuses_what_the_restore_refuses(tmp_path, redis_server):
    """A redis component without `service` cannot be restored in place: both say so, both exit 2."""
    redis_server.client().set("k", "v")
    st = LocalStack(str(tmp_path / "stack"))
    st.add_component("redis", "redis", redis_server.data_dir, port=redis_server.port)
    with st:
        st.ragctl("init")
        st.ragctl("backup")
        parent = os.path.dirname(os.path.abspath(redis_server.data_dir))
        before = sorted(os.listdir(parent))
        dry = st.ragctl("restore", "latest", "--dry-run", check=False)
        real = st.ragctl("restore", "latest", check=False)
        for cp in (dry, real):
            assert cp.returncode == UsageError.exit_code, ragctl_output(cp)
            assert "an in-place redis restore must stop the database first" in cp.stderr, ragctl_output(cp)
            assert_clean(st, cp)
        assert sorted(os.listdir(parent)) == before  # nothing moved aside
        assert redis_server.client().get("k") in ("v", b"v")
        ok = st.ragctl("restore", "latest", "--dry-run", "--target", str(tmp_path / "elsewhere"))
        assert "write redis (redis, " in ok.stdout and str(tmp_path / "elsewhere") + "/redis" in ok.stdout


def test_health_reports_a_service_the_agent_cannot_control(tmp_path):
    st = LocalStack(str(tmp_path / "stack"))
    st.add_component("documents", "paths", docs_dir(tmp_path), service="systemd:no-such-unit-4711.service")
    with st:
        st.ragctl("init")
        cp = st.ragctl("health", "--json", check=False)
        checks = {c["check"]: c for c in json.loads(cp.stdout)["checks"]}
        assert cp.returncode == 10, ragctl_output(cp)
        assert not checks["component documents"]["ok"]
        assert "no-such-unit-4711.service" in checks["component documents"]["detail"], checks
        assert_clean(st, cp)


def test_bad_component_option_stops_the_controller_naming_file_and_key(tmp_path):
    st = LocalStack(str(tmp_path / "stack"))
    st.add_component("chroma", "chroma", str(tmp_path / "chroma"), consistency="pause")
    os.makedirs(st.workdir)
    st.write_configs()
    cp = subprocess.run([sys.executable, "-m", "ragbackup.controller.serve", "--config", st.controller_config],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == ConfigError.exit_code, cp.stderr
    assert f"{st.controller_config}: [components.chroma] consistency: \"pause\" needs `service`" in cp.stderr
    assert "Traceback" not in cp.stderr
