"""`ragctl import DIR`: the runbook's backup directory as one tar stream.

In: a directory in tmp_path. Out: the stream reads back with tarfile as the directory's top-level
regular files below its own name (size as announced); the rest is listed; a file that shrinks
while it is sent stops the upload with a UsageError.
"""
from __future__ import annotations

import io
import os
import tarfile

import pytest
from ragbackup import errors
from ragbackup.cli import import_dir


def _dir(tmp_path):
    d = tmp_path / "rag-system-backup-20250101_020000"
    d.mkdir()
    (d / "documents.tar.gz").write_bytes(os.urandom(3000))
    (d / ".env.backup").write_bytes(b"K=v\n")
    os.chmod(d / ".env.backup", 0o600)
    (d / "manifest.json").write_text("{}")
    (d / "logs").mkdir()
    os.symlink("/etc/passwd", d / "passwd")
    return d


def test_the_stream_is_a_tar_of_the_top_level_files(tmp_path):
    d = _dir(tmp_path)
    up = import_dir.plan(str(d))
    assert up.filename == "rag-system-backup-20250101_020000.tar"
    assert up.skipped == [("logs", "not a regular file"), ("passwd", "not a regular file")]
    data = b"".join(import_dir.stream(str(d), up))
    assert len(data) == up.size
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        got = {m.name: (m.mode, t.extractfile(m).read()) for m in t.getmembers()}
    top = d.name
    assert sorted(got) == [f"{top}/.env.backup", f"{top}/documents.tar.gz", f"{top}/manifest.json"]
    assert got[f"{top}/.env.backup"] == (0o600, b"K=v\n")
    assert got[f"{top}/documents.tar.gz"][1] == (d / "documents.tar.gz").read_bytes()


def test_a_file_that_shrinks_while_sent_stops_the_upload(tmp_path):
    d = _dir(tmp_path)
    up = import_dir.plan(str(d))
    (d / "documents.tar.gz").write_bytes(b"short")
    with pytest.raises(errors.UsageError, match="documents.tar.gz shrank while it was sent"):
        b"".join(import_dir.stream(str(d), up))
