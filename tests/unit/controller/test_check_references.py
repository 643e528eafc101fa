"""A backup checks every chunk its tree names, cached chunk lists included: in sorted, de-duplicated batches.

In: a tree file written as the controller writes it, and a writer that answers `missing`.
Out: the ids asked about (sorted, each once per batch, every one of them) and the error when some are absent.
"""
from __future__ import annotations

import os

import pytest

from ragbackup import errors
from ragbackup.controller import backup
from ragbackup.repo.tree import Entry


class _Writer:
    def __init__(self, absent: set[bytes] = frozenset()):
        self.absent = absent
        self.asked: list[list[bytes]] = []

    def missing(self, ids: list[bytes]) -> list[int]:
        self.asked.append(list(ids))
        return [n for n, i in enumerate(ids) if i in self.absent]


def _tree(tmp_path, files: list[list[bytes]]) -> str:
    path = tmp_path / "tree"
    with open(path, "wb") as f:
        for n, chunks in enumerate(files):
            f.writelines(Entry(f"f{n}".encode(), "file", size=len(chunks), chunks=chunks).json_pieces())
    return str(path)


def test_every_named_chunk_is_checked_sorted_and_once_per_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(backup, "CHECK_BATCH", 50)
    ids = [os.urandom(32) for _ in range(130)]
    files = [ids[:60], ids[60:], ids[:10]]  # the last file repeats chunks of the first
    writer = _Writer()
    backup._check_references(writer, _tree(tmp_path, files))

    assert all(b == sorted(b) and len(b) == len(set(b)) for b in writer.asked)
    assert {i for b in writer.asked for i in b} == set(ids)
    assert len(writer.asked) >= 2


def test_one_entry_of_many_chunks_is_checked_in_bounded_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(backup, "CHECK_BATCH", 50)
    ids = [os.urandom(32) for _ in range(230)]  # one file (an RDB stored by record) naming them all
    writer = _Writer()
    backup._check_references(writer, _tree(tmp_path, [ids[:5], ids, ids[:3]]))

    assert max(len(b) for b in writer.asked) <= 50
    assert {i for b in writer.asked for i in b} == set(ids)


def test_a_missing_chunk_fails_the_backup(tmp_path):
    ids = [os.urandom(32) for _ in range(20)]
    with pytest.raises(errors.IntegrityError, match="1 chunks named by the agent's cache"):
        backup._check_references(_Writer({ids[7]}), _tree(tmp_path, [ids]))
