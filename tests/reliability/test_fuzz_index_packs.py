"""Hostile input: index objects (core/repo/index.py) and pack files (core/repo/packs.py), damaged."""
from __future__ import annotations

import io
import json
import os
import tempfile

import pytest
import zstandard
from hypothesis import strategies as st

from reliability.fuzzlib import expect_typed, fuzz, mutated

from ragbackup import errors
from ragbackup.repo.crypto import Cipher, MasterKey
from ragbackup.repo.index import INDEX_AAD, IndexCache, encode_index, read_index
from ragbackup.repo.packs import HEADER_AAD, MAGIC, BlobLocation, PackWriter, parse_header, read_header
from ragbackup.storage.local import LocalStorage

CIPHER = Cipher(MasterKey.generate())
ID = st.binary(min_size=32, max_size=32)
U32 = st.integers(0, 2**32 - 1)
LOCS = st.lists(st.builds(lambda i, t, f, o, n, r: BlobLocation(i, t, f, o, n, r), ID, st.integers(0, 1),
                          st.integers(0, 1), st.integers(8, 2**40), U32, U32), max_size=5)
PACKS = st.lists(st.tuples(ID.map(bytes.hex), st.integers(0, 2**40), LOCS), min_size=1, max_size=3)


def _document(packs) -> bytes:
    """The index document's JSON as encode_index writes it (before compression and sealing)."""
    return json.dumps({"version": 1, "packs": [
        {"id": pid, "size": size, "blobs": [[b.id.hex(), b.type, b.flags, b.offset, b.length, b.raw_length]
                                            for b in blobs]} for pid, size, blobs in packs]},
        separators=(",", ":")).encode()


def _seal_document(doc: bytes) -> bytes:
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False) as z:
        z.write(doc)
    return bytes(CIPHER.seal(out.getvalue(), INDEX_AAD))


@pytest.fixture
def cache():
    with tempfile.TemporaryDirectory() as d:
        c = IndexCache(os.path.join(d, "index.sqlite"))
        yield c
        c.close()


def test_index_objects_round_trip(record_property):
    """An index object written after a backup reads back the same pack and blob locations."""
    def check(packs):
        back = read_index(CIPHER, "x", encode_index(CIPHER, packs))
        assert back == [(pid, size, [BlobLocation(b.id, b.type, b.flags, b.offset, b.length, b.raw_length, pid)
                                     for b in blobs]) for pid, size, blobs in packs]
    record_property("tries", fuzz(check, PACKS, fast=200, long=1_000))


def test_damaged_index_objects_are_refused_typed(record_property, cache):
    """A damaged index object (its sealed bytes, or its JSON behind a valid seal) is IntegrityError, exit 6"""
    def check(args):
        kind, data = args
        sealed = _seal_document(data) if kind == "document" else data
        entries = expect_typed(lambda: read_index(CIPHER, "fuzz", sealed), errors.IntegrityError)
        if entries is not None:  # what passed is safe to record in the index cache
            cache.add_index_file("fuzz", entries)
            cache.forget_index_file("fuzz")
    documents = st.tuples(st.just("document"), mutated(PACKS.map(_document)))
    objects = st.tuples(st.just("sealed"), mutated(PACKS.map(lambda p: encode_index(CIPHER, p))))
    record_property("tries", fuzz(check, st.one_of(documents, documents, objects)))
    assert errors.IntegrityError.exit_code == 6


def _pack(blobs: list[bytes], tmp: str) -> tuple[bytes, list[BlobLocation]]:
    w = PackWriter(tmp, CIPHER)
    for i, b in enumerate(blobs):
        w.add(i.to_bytes(32, "big"), 0, 0, len(b), CIPHER.seal(b, b"blob"))
    _, locs = w.finish(fsync=False)
    with open(w.path, "rb") as f:
        data = f.read()
    os.unlink(w.path)
    return data, locs


BLOBS = st.lists(st.binary(max_size=200), min_size=1, max_size=5)


def test_packs_round_trip(record_property, tmp_path):
    """A pack written by a backup lists the blobs it holds, and each opens to its bytes."""
    def check(blobs):
        data, locs = _pack(blobs, str(tmp_path))
        back = parse_header(CIPHER, locs[0].pack, data)
        assert back == locs
        assert [CIPHER.open(data[b.offset:b.offset + b.length], b"blob") for b in back] == blobs
    record_property("tries", fuzz(check, BLOBS, fast=200, long=1_000))


def test_damaged_packs_are_refused_typed(record_property, tmp_path):
    """A damaged pack file (bytes, trailer, or header records behind a valid seal) is IntegrityError, exit 6"""
    storage = LocalStorage(str(tmp_path / "repo"), fsync=False)  # durability is not under test
    pid = "ab" * 32

    def check(args):
        kind, blobs, ops_data = args
        data, _ = _pack(blobs, str(tmp_path))
        if kind == "header":  # records mutated, then sealed again: the parser sees them past authentication
            hlen = int.from_bytes(data[-12:-8], "little")
            header = bytes(CIPHER.seal(ops_data, HEADER_AAD))
            data = data[:len(data) - 12 - hlen] + header + len(header).to_bytes(4, "little") + MAGIC
        else:
            data = ops_data
        locs = expect_typed(lambda: parse_header(CIPHER, pid, data), errors.IntegrityError)
        storage.put(f"data/{pid[:2]}/{pid}", data)
        stored = expect_typed(lambda: read_header(storage, CIPHER, pid, len(data)), errors.IntegrityError)
        for loc in (locs or []) + (stored or []):
            assert 8 <= loc.offset and loc.offset + loc.length <= len(data)
            expect_typed(lambda: CIPHER.open(memoryview(data)[loc.offset:loc.offset + loc.length], b"blob"),
                         errors.IntegrityError)

    def header_records(blobs):
        data, locs = _pack(blobs, str(tmp_path))
        hlen = int.from_bytes(data[-12:-8], "little")
        return CIPHER.open(data[len(data) - 12 - hlen:len(data) - 12], HEADER_AAD)

    headers = BLOBS.flatmap(lambda b: st.tuples(st.just("header"), st.just(b),
                                                mutated(st.just(header_records(b)), noise=0)))
    whole = BLOBS.flatmap(lambda b: st.tuples(st.just("pack"), st.just(b), mutated(st.just(_pack(b, str(tmp_path))[0]))))
    record_property("tries", fuzz(check, st.one_of(headers, whole)))
