"""LocalStack's socket directory: beside the work directory, or short when that path is too deep for AF_UNIX.

In: work directory paths. Out: where the controller's socket goes, within the unix socket length.
"""
from __future__ import annotations

import os

from ragbackup.localstack import LocalStack, run_dir
from ragbackup.unixsock import MAX_PATH


def test_a_short_workdir_keeps_its_sockets_inside() -> None:
    assert run_dir("/var/tmp/stack") == "/var/tmp/stack/run"


def test_a_deep_workdir_gets_one_short_directory_per_workdir() -> None:
    deep = "/tmp/pytest-of-root/pytest-19/popen-gw0/test_a_tiny_files_case_runs_th0/data/work-8183/repo"
    other = deep.replace("8183", "8184")
    assert len(os.path.join(deep, "run", "controller.sock")) > MAX_PATH
    assert run_dir(deep) == run_dir(deep) != run_dir(other)
    assert len(os.path.join(run_dir(deep), ".grpc", "s")) <= MAX_PATH


def test_a_deep_stack_removes_its_short_directory_when_stopped(tmp_path) -> None:
    deep = tmp_path / ("d" * 100)
    st = LocalStack(str(deep))
    assert not st.socket.startswith(str(deep))
    os.makedirs(st.run_dir)
    st.stop()
    assert not os.path.exists(st.run_dir)
