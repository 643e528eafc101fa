"""walk_ahead: the walk on a background thread gives the same entries, errors and a clean stop."""
import os
import threading

import pytest

from ragbackup import errors
from ragbackup.agent.capture import walk as walk_mod
from ragbackup.agent.capture.walk import walk, walk_ahead


def _tree(root) -> bytes:
    for d in range(30):
        sub = root / f"d{d:02d}" / "inner"
        sub.mkdir(parents=True)
        for f in range(20):
            (sub / f"f{f}").write_bytes(b"x" * f)
    (root / "link").symlink_to("d00")
    return os.fsencode(root)


def test_same_entries_in_the_same_order(tmp_path, monkeypatch):
    monkeypatch.setattr(walk_mod, "AHEAD_BATCH", 7)  # many hand-overs
    monkeypatch.setattr(walk_mod, "AHEAD_BATCHES", 2)
    root = _tree(tmp_path)
    plain = [(rel, st.st_ino) for rel, st in walk(root, ("f1?",))]
    ahead = [(rel, st.st_ino) for rel, st in walk_ahead(root, ("f1?",))]
    assert ahead == plain and len(plain) == 30 * 2 + 30 * 10 + 1


def test_errors_reach_the_caller(tmp_path):
    with pytest.raises(errors.NotFound, match="does not exist"):
        list(walk_ahead(os.fsencode(tmp_path / "missing")))


def test_closing_early_stops_the_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(walk_mod, "AHEAD_BATCH", 1)
    monkeypatch.setattr(walk_mod, "AHEAD_BATCHES", 1)
    before = threading.active_count()
    gen = walk_ahead(_tree(tmp_path))
    next(gen)
    gen.close()
    assert threading.active_count() == before
