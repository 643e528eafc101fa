"""Hostile input: tree lines (core/repo/tree.py) and snapshot manifests (core/repo/manifest.py)."""
from __future__ import annotations

import hashlib
import json

from hypothesis import strategies as st

from reliability.fuzzlib import expect_typed, fuzz, mutated

from ragbackup import errors
from ragbackup.repo import manifest as manifests
from ragbackup.repo.tree import (DIR, FILE, HARDLINK, RDB_RECORDS, SYMLINK, Entry, check_entry, decode_lines,
                                 encode_lines)

INT = st.integers(0, 2**32)
_IDS = st.one_of(st.lists(st.binary(min_size=32, max_size=32), max_size=4),
                 st.integers(1000, 2500).map(lambda n: [hashlib.sha256(b"%d" % i).digest() for i in range(n)]))


@st.composite
def entries(draw) -> Entry:
    typ = draw(st.sampled_from([FILE, DIR, SYMLINK, HARDLINK]))
    e = Entry(path=draw(st.binary(min_size=1, max_size=40)), type=typ, mode=draw(INT), uid=draw(INT),
              gid=draw(INT), mtime_ns=draw(st.integers(-2**62, 2**62)))
    if typ == FILE:
        e.size = draw(st.integers(0, 2**40))
        e.chunks = draw(_IDS)
        e.layout = draw(st.sampled_from(["", RDB_RECORDS]))
        if e.size > 10 and draw(st.booleans()):
            e.holes = [1, e.size // 2]
    if typ in (SYMLINK, HARDLINK):
        e.target = draw(st.binary(min_size=1, max_size=40))
    return e


TREES = st.lists(entries(), min_size=1, max_size=4)
TREE_BYTES = TREES.map(lambda es: b"".join(encode_lines(es)))


def _pieces(data: bytes, cut: int) -> list[bytes]:
    return [data[i:i + cut] for i in range(0, len(data), cut)] or [b""]


def test_tree_lines_round_trip(record_property):
    """Tree entries written as lines (split anywhere) read back equal."""
    def check(args):
        es, cut = args
        back = list(decode_lines(_pieces(b"".join(encode_lines(es)), cut)))
        assert [(b.path, b.type, b.mode, b.uid, b.gid, b.mtime_ns, b.size, list(b.chunks), b.target,
                 list(b.holes), b.layout) for b in back] == \
               [(e.path, e.type, e.mode, e.uid, e.gid, e.mtime_ns, e.size, list(e.chunks), e.target,
                 list(e.holes), e.layout) for e in es]
    record_property("tries", fuzz(check, st.tuples(TREES, st.integers(1, 70_000)), fast=200, long=1_000))


def test_damaged_tree_lines_are_refused_typed(record_property):
    """A damaged tree blob (bit flips, truncation, splices, wrong types) is IntegrityError or UnsafePath, never a traceback"""
    def check(args):
        data, cut = args
        for e in expect_typed(lambda: list(decode_lines(_pieces(data, cut))), errors.IntegrityError) or []:
            expect_typed(lambda: check_entry(e), errors.UnsafePath, errors.UnsupportedFormat)
    record_property("tries", fuzz(check, st.tuples(mutated(TREE_BYTES), st.integers(1, 70_000))))


_COMP = st.fixed_dictionaries({
    "kind": st.sampled_from(["paths", "redis", "chroma", "config"]), "agent": st.text(max_size=8),
    "path": st.text(max_size=12), "capture_id": st.text(max_size=12), "parent": st.text(max_size=8),
    "tree": st.lists(st.binary(min_size=32, max_size=32).map(bytes.hex), max_size=3).map(tuple),
    "stats": st.dictionaries(st.sampled_from(["files", "dirs", "bytes_total", "bytes_read"]), INT),
    "facts": st.dictionaries(st.text(max_size=6), st.one_of(INT, st.text(max_size=6)), max_size=3)})
MANIFESTS = st.builds(
    lambda comps, sid, reason, stats: manifests.Manifest(
        id=sid, time="2026-01-02T03:04:05Z", kind="full", components={
            n: manifests.ComponentManifest(**c) for n, c in comps.items()}, reason=reason,
        stats=manifests.StoreStats(**stats)),
    st.dictionaries(st.text(min_size=1, max_size=8), _COMP, max_size=3),
    st.from_regex(r"rag-system-backup-\d{8}_\d{6}", fullmatch=True), st.text(max_size=20),
    st.fixed_dictionaries({"blobs_new": INT, "bytes_stored": INT, "packs": INT}))


def test_manifests_round_trip(record_property):
    """A snapshot manifest stored and read back is the same manifest."""
    def check(m):
        assert manifests.Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    record_property("tries", fuzz(check, MANIFESTS, fast=200, long=1_000))


def test_damaged_manifests_are_refused_typed(record_property):
    """A damaged snapshot manifest (its JSON mutated: wrong types, missing keys, truncation) is IntegrityError"""
    def check(data: bytes):
        m = expect_typed(lambda: manifests.decode(data, "rag-system-backup-20260102_030405"),
                         errors.IntegrityError)
        if m is not None:  # what ragctl and the controller compute from a manifest works on it
            m.totals(), m.summary(), m.captures(), m.kinds(), m.tree_ids()
    valid = MANIFESTS.map(lambda m: json.dumps(m.to_dict(), separators=(",", ":")).encode())
    record_property("tries", fuzz(check, mutated(valid)))
