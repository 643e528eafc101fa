"""Writes golden/format1-repo with the code of that time installed (key objects had no `check`).

Usage: python make_format1_repo.py OUT_DIR (OUT_DIR must not exist yet).
"""
import os
import sys
import tempfile

from ragbackup.repo import chunking
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.repository import RepoParams, Repository
from ragbackup.repo.tree import Entry, encode_lines
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import LocalStorage

out = sys.argv[1]
tmp = tempfile.mkdtemp()
repo = Repository.init(LocalStorage(out), Unlocker("passphrase", b"format-1 passphrase"), tmp,
                       RepoParams(pack_size=64 * 1024))
w = BlobWriter(repo, os.path.join(tmp, "staging"))
files = {b"docs/a.txt": b"a document of format 1\n" * 200, b"docs/b.bin": bytes(range(256)) * 300}
entries = [Entry(b"docs", "dir", 0o755)]
comp = chunking.Compressor()
for path, data in files.items():
    entries.append(Entry(path, "file", 0o644, size=len(data), chunks=[w.add_plain(data, BLOB_DATA, comp)]))
lines = os.path.join(tmp, "tree")
with open(lines, "wb") as f:
    for line in encode_lines(entries):
        f.write(line)
trees = w.add_tree(lines)
w.commit()
sid = "rag-system-backup-20261101_000000"
repo.save_snapshot({"version": 1, "id": sid, "time": "2026-11-01T00:00:00Z", "kind": "full", "reason": "test",
                    "host": "h", "user": "u", "components": {"docs": {
                        "kind": "paths", "agent": "a", "path": "/srv/docs", "capture_id": sid + ".docs",
                        "parent": "", "tree": [t.hex() for t in trees], "stats": {"files": 2}, "facts": {}}},
                    "stats": {}})
repo.close()
