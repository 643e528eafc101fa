"""A backup checks every chunk its tree names, cached chunk lists included: in sorted, de-duplicated
batches, while the capture streams, and again at the end for those not stored yet when checked.

In: the chunk ids of entries as a capture receives them, and a writer that answers `missing`.
Out: the ids asked about (sorted, each once per batch, every one of them) and the error when some are absent.
"""
from __future__ import annotations

import os
import threading

import pytest

from ragbackup import errors
from ragbackup.controller import refcheck


class _Writer:
    def __init__(self, absent: set[bytes] = frozenset(), verified: set[bytes] = frozenset()):
        self.absent = set(absent)
        self.verified = set(verified)  # digests of chunk lists known wholly stored
        self.asked: list[list[bytes]] = []
        self.claimed: list[bytes] = []
        self.threads: set[str] = set()

    def stored_list(self, digest: bytes, ids) -> bool:
        if digest not in self.verified:
            return False
        self.claimed.extend(ids)
        return True

    def missing(self, ids: list[bytes]) -> list[int]:
        self.asked.append(list(ids))
        self.threads.add(threading.current_thread().name)
        return [n for n, i in enumerate(ids) if i in self.absent]


def _check(writer: _Writer, files: list[list[bytes]]) -> None:
    check = refcheck.RefCheck(writer)
    try:
        for chunks in files:
            check.add(chunks)
        check.finish()
    finally:
        check.close()


def test_every_named_chunk_is_checked_sorted_and_once_per_batch(monkeypatch):
    monkeypatch.setattr(refcheck, "CHECK_BATCH", 50)
    ids = [os.urandom(32) for _ in range(130)]
    writer = _Writer()
    _check(writer, [ids[:60], ids[60:], ids[:10]])  # the last file repeats chunks of the first

    assert all(b == sorted(b) and len(b) == len(set(b)) for b in writer.asked)
    assert {i for b in writer.asked for i in b} == set(ids)
    assert len(writer.asked) >= 2
    assert any(name.startswith("refcheck") for name in writer.threads)  # batches off the stream's thread


def test_one_entry_of_many_chunks_is_checked_in_bounded_batches(monkeypatch):
    monkeypatch.setattr(refcheck, "CHECK_BATCH", 50)
    ids = [os.urandom(32) for _ in range(230)]  # one file (an RDB stored by record) naming them all
    writer = _Writer()
    _check(writer, [ids[:5], ids, ids[:3]])

    assert max(len(b) for b in writer.asked) <= 50
    assert {i for b in writer.asked for i in b} == set(ids)


def test_a_missing_chunk_fails_the_backup():
    ids = [os.urandom(32) for _ in range(20)]
    with pytest.raises(errors.IntegrityError, match="1 chunks named by the agent's cache"):
        _check(_Writer({ids[7]}), [ids])


def test_a_chunk_stored_after_its_batch_was_checked_passes(monkeypatch):
    """A chunk of this capture still on its way when its batch is checked is asked about again at the end."""
    monkeypatch.setattr(refcheck, "CHECK_BATCH", 10)
    ids = [os.urandom(32) for _ in range(30)]
    writer = _Writer({ids[3]})
    check = refcheck.RefCheck(writer)
    check.add(ids[:15])
    check.add(ids[15:])
    check._submit()
    while check._jobs:
        check._collect()
    writer.absent.clear()  # the chunk arrives and is stored
    check.finish()
    check.close()
    assert writer.asked[-1] == [ids[3]]


def test_a_big_list_verified_before_is_claimed_not_looked_up():
    big = [os.urandom(32) for _ in range(refcheck.BIG_LIST)]
    small = [os.urandom(32) for _ in range(5)]
    writer = _Writer(verified={refcheck.list_digest(big)})
    check = refcheck.RefCheck(writer)
    check.add(big)
    check.add(small)
    check.finish()
    check.close()
    assert {i for b in writer.asked for i in b} == set(small)  # the big list's ids were not asked about
    assert writer.claimed == big and check.whole == 1 and check.digests == []


def test_a_big_list_not_verified_is_checked_id_by_id_and_its_digest_kept():
    big = [os.urandom(32) for _ in range(refcheck.BIG_LIST + 1)]
    writer = _Writer()
    check = refcheck.RefCheck(writer)
    check.add(big)
    check.add(big[:refcheck.BIG_LIST - 1])  # a smaller list is never looked up whole
    check.finish()
    check.close()
    assert {i for b in writer.asked for i in b} == set(big)
    assert check.digests == [refcheck.list_digest(big)] and check.whole == 0
