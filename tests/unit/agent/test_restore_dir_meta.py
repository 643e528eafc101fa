"""Directories get their mode and mtime back at the end of a restore, from metadata the writer keeps
apart from the received messages: an entry of a received batch is part of that batch's message, so
keeping the entry kept the whole batch (the agent's restore peak grew x2.78 from 100,000 to
1,000,000 small files, bench/scale.py)."""
from __future__ import annotations

import os

from google.protobuf.message import Message
from ragbackup.repo.tree import ROOT
from ragbackup.v1 import common_pb2

from ragbackup.agent import restore

KEY = b"k" * 32
MTIME = 1_600_000_000_123_456_789


def _batch(n_dirs: int, files_per_dir: int) -> common_pb2.EntryBatch:
    """One received batch: the root, then directories, each with its empty files."""
    ids = dict(uid=os.geteuid(), gid=os.getegid())
    entries = [common_pb2.Entry(path=ROOT, type=common_pb2.ENTRY_TYPE_DIR, mode=0o751, mtime_ns=MTIME, **ids)]
    for d in range(n_dirs):
        entries.append(common_pb2.Entry(path=b"d%d" % d, type=common_pb2.ENTRY_TYPE_DIR, mode=0o705 + d % 2,
                                        mtime_ns=MTIME + d, **ids))
        entries += [common_pb2.Entry(path=b"d%d/f%d" % (d, f), type=common_pb2.ENTRY_TYPE_FILE, mode=0o644,
                                     mtime_ns=MTIME, **ids) for f in range(files_per_dir)]
    return common_pb2.EntryBatch.FromString(common_pb2.EntryBatch(entries=entries).SerializeToString())


def test_directory_metadata_is_applied_last_and_no_received_entry_is_kept(tmp_path):
    batch = _batch(n_dirs=3, files_per_dir=4)
    root = tmp_path / "staged"
    writer = restore.TreeWriter(str(root), KEY)
    for e in batch.entries:
        writer.write(e, lambda expected: b"")
    kept = [m for _, m in writer._dirs] + [writer._root_meta]
    assert not [m for m in kept if isinstance(m, Message)], "the writer holds received messages until finish"
    writer.finish()

    st = os.stat(root)
    assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o751, MTIME)
    for d in range(3):
        st = os.stat(root / f"d{d}")
        assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o705 + d % 2, MTIME + d)
        assert sorted(os.listdir(root / f"d{d}")) == [f"f{f}" for f in range(4)]
