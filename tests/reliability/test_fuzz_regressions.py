"""Hostile input: each untyped exception the fuzzing found, as a fixed example (each raised a traceback before)."""
from __future__ import annotations

import io
import json
import tarfile
import threading

import pytest
import zstandard

from ragbackup import errors, wire
from ragbackup.config import load_controller_config
from ragbackup.controller.runbook_entries import MemberTable
from ragbackup.controller.runbook_scan import ImportLimits, scan
from ragbackup.repo import rdb
from ragbackup.repo import crypto
from ragbackup.repo.crypto import Cipher, MasterKey, Unlocker
from ragbackup.repo.index import INDEX_AAD, read_index
from ragbackup.repo.packs import HEADER_AAD, MAGIC, parse_header
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import Entry, check_entry
from ragbackup.storage.local import LocalStorage
from ragbackup.v1 import agent_pb2

CIPHER = Cipher(MasterKey.generate())


@pytest.fixture(autouse=True)
def _one_try(record_property):
    """Each fixed example is one input, tried once (docs/RELIABILITY.md counts it)."""
    record_property("tries", 1)

LINE = {"p": "a", "t": "file", "m": 0, "u": 0, "g": 0, "mt": 0}


@pytest.mark.parametrize("raw", [b"\x1a\x05abc", b"\x1a\x03\x0a\x05a", b"\xff\xff\xff"])
def test_damaged_grpc_message_is_malformed_message_exit_2(raw):
    """A damaged gRPC message is MalformedMessage (exit 2), not protobuf's DecodeError."""
    with pytest.raises(errors.UsageError) as info:
        wire.chunk_batch_deserializer(agent_pb2.CaptureEvent)(raw)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("doc", [{**LINE, "p": 1}, {**LINE, "p": "\ud800"}, {**LINE, "h": {"a": 1}},
                                 {**LINE, "c": [5]}, {**LINE, "m": "0"}, [1, 2]])
def test_tree_line_of_the_wrong_shape_is_integrity_error(doc):
    """A tree line of the wrong shape (a number as path, a lone surrogate, holes as an object) is IntegrityError."""
    with pytest.raises(errors.IntegrityError):
        check_entry(Entry.from_json(json.dumps(doc)))


@pytest.mark.parametrize("doc", [{"id": "x", "time": "t", "components": []},
                                 {"id": "x", "time": "t", "stats": {"packs": "many"}},
                                 {"id": "x", "time": "t", "components": {"c": {"tree": ["zz"]}}},
                                 {"id": "x", "time": "t", "duration_s": "slow"}, ["id"]])
def test_stored_manifest_of_the_wrong_shape_is_integrity_error(doc, tmp_path):
    """A stored snapshot manifest of the wrong shape is IntegrityError naming the snapshot."""
    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), Unlocker("passphrase", b"pw"), str(tmp_path / "c"))
    sid = "rag-system-backup-20260102_030405"
    data = zstandard.compress(json.dumps(doc).encode())
    repo.storage.put(f"snapshots/{sid}", bytes(repo.cipher.seal(data, b"snapshot:" + sid.encode())))
    with pytest.raises(errors.IntegrityError, match=sid):
        repo.load_manifest(sid)
    repo.close()


def _sealed_index(doc: bytes) -> bytes:
    return bytes(CIPHER.seal(zstandard.compress(doc), INDEX_AAD))


@pytest.mark.parametrize("doc", [
    json.dumps({"version": 1, "packs": [{"id": "p", "size": 1, "blobs": [["00" * 32, "x", 0, 0, 0, 0]]}]}).encode(),
    json.dumps({"version": 1, "packs": [{"id": "p", "size": "1", "blobs": []}]}).encode(),
    b"[" * 5000])
def test_index_document_of_the_wrong_types_is_integrity_error(doc):
    """An index object whose rows hold strings for offsets, or nest too deep, is IntegrityError."""
    with pytest.raises(errors.IntegrityError, match="index/x"):
        read_index(CIPHER, "x", _sealed_index(doc))


def test_pack_header_placing_a_blob_outside_the_pack_is_integrity_error():
    """parse_header (verify, index rebuild) refuses a header that places a blob outside the pack."""
    record = (b"\x01" * 32) + bytes([0, 0]) + (10**9).to_bytes(8, "little") + (5).to_bytes(4, "little") * 2
    header = bytes(CIPHER.seal(record, HEADER_AAD))
    data = MAGIC + header + len(header).to_bytes(4, "little") + MAGIC
    with pytest.raises(errors.IntegrityError, match="outside the pack"):
        parse_header(CIPHER, "p", data)


def test_unknown_rdb_is_a_typed_error():
    """The RDB record parser's refusal is a typed error (capture stores such a file as plain chunks)."""
    with pytest.raises(errors.RagBackupError):
        rdb.parse(b"REDIS0011\xfa")


BASE = '[controller]\nsocket = "/tmp/s"\n[repository]\npath = "/tmp/r"\npassword = "x"\n[tls]\ninsecure = true\n'


@pytest.mark.parametrize("text,message", [
    (b"\x80" + BASE.encode(), "not UTF-8"),
    ((BASE + '[retention]\ntimezone = "Europe"\n').encode(), "timezone"),
    ((BASE + '[retention]\ntimezone = "' + "x" * 300 + '"\n').encode(), "timezone"),
    ((BASE + '[schedule]\nfull_every = "99999999999999999999d"\n').encode(), "full_every"),
    ((BASE + "[alerts]\nsize_deviation = nan\n").encode(), "size_deviation")])
def test_config_values_that_crashed_the_loader_are_config_errors(tmp_path, text, message):
    """A config that is not UTF-8, a time zone naming a directory, a span too large, nan: ConfigError (exit 3)."""
    path = tmp_path / "controller.toml"
    path.write_bytes(text)
    with pytest.raises(errors.ConfigError, match=message):
        load_controller_config(str(path))


def test_config_path_that_is_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(errors.ConfigError, match="cannot read"):
        load_controller_config(str(tmp_path))


def _outer(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return out.getvalue()


# the second: a gzip header whose extra field holds bad compressed data (tarfile: AttributeError)
@pytest.mark.parametrize("data", [b"\x1f\x8b\x08", b"\x1f\x8b\x08\x04" + b"\x00" * 6 + b"\x0a\x00" + b"\xff" * 64])
def test_runbook_tarball_with_a_truncated_gzip_header_is_a_usage_error(tmp_path, data):
    """An upload whose gzip header is cut short is a UsageError naming it (tarfile raised TypeError)."""
    path = tmp_path / "upload.tar.gz"
    path.write_bytes(data)
    with pytest.raises(errors.UsageError, match="upload.tar.gz"):
        scan(str(path), "upload.tar.gz", MemberTable(str(tmp_path / "m.sqlite")), ImportLimits(), threading.Event())


def test_runbook_manifest_nested_too_deep_is_ignored_like_any_bad_json(tmp_path):
    """A manifest.json nested deeper than the JSON parser recurses is ignored (as any bad JSON), not a crash."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        ti = tarfile.TarInfo("docs/a.txt")
        ti.size = 1
        tar.addfile(ti, io.BytesIO(b"a"))
    path = tmp_path / "upload.tar.gz"
    path.write_bytes(_outer({"b/manifest.json": b"[" * 5000, "b/documents.tar.gz": inner.getvalue()}))
    s = scan(str(path), "upload.tar.gz", MemberTable(str(tmp_path / "m.sqlite")), ImportLimits(), threading.Event())
    assert s.manifest is None and len(s.archives) == 1


@pytest.mark.parametrize("config", [b"[]", b"{", json.dumps({"format": "rag-backup", "version": 1, "id": "../../escape",
                                                              "params": {}}).encode(),
                                    json.dumps({"format": "rag-backup", "version": 1, "id": "0" * 32,
                                                "params": {"pack_size": "big"}}).encode()])
def test_damaged_repository_config_is_a_repository_error(tmp_path, config):
    """A damaged repository config (not an object, an id leading out of the cache dir, bad params) is RepositoryError."""
    storage = LocalStorage(str(tmp_path / "repo"))
    keyfile = Unlocker("keyfile", b"k" * 32)
    storage.put("config", config)
    storage.put("keys/k1", crypto.wrap_master_key(MasterKey.generate(), keyfile))
    with pytest.raises(errors.RepositoryError):
        Repository.open(storage, keyfile, str(tmp_path / "a" / "cache"))
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("n,r,p", [(2**30, 1, 1), (2**20, 1, 172126), (2**16, 1, 1), (1024, 1, 10**6)])
def test_key_object_asking_scrypt_for_more_than_allowed_is_key_damaged(n, r, p):
    """A key object whose scrypt parameters OpenSSL refuses (memory, n >= 2**(16r)) or that would run
    for minutes is KeyDamaged, not a ValueError or a stall."""
    obj = {"version": 1, "kdf": "scrypt", "n": n, "r": r, "p": p, "salt": "c2FsdA==", "data": "A" * 64}
    with pytest.raises(errors.KeyDamaged, match="scrypt parameters"):
        crypto.unwrap_master_key(json.dumps(obj).encode(), Unlocker("passphrase", b"pw"))


@pytest.mark.parametrize("data", [b"REDIS0011\x00\x01k\x81\xff\xff\xff\xff\xff\xff\xff\xff\xff\x08"])
def test_rdb_record_whose_length_points_past_the_file_is_unknown(data):
    """An RDB record whose 64-bit length points past the file is rdb.Unknown, not an OverflowError."""
    with pytest.raises(rdb.Unknown):
        rdb.parse(data)


def _sparse_member(sparse_map: bytes) -> bytes:
    """A tarball with one pax 1.0 sparse member whose map (the start of its data) is `sparse_map`."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        body = sparse_map.ljust(512, b"\0") + b"x" * 512
        ti = tarfile.TarInfo("b/documents.tar.gz")
        ti.size = len(body)
        ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "b/documents.tar.gz",
                          "GNU.sparse.realsize": "1024"}
        tar.addfile(ti, io.BytesIO(body))
    return out.getvalue()


@pytest.mark.parametrize("sparse_map", [b"1\nzero\n512\n", b"x\n"])
def test_runbook_tarball_with_a_damaged_sparse_map_is_a_usage_error(tmp_path, sparse_map):
    """A member whose GNU sparse map is not numbers is a UsageError naming the upload (tarfile: ValueError)."""
    path = tmp_path / "upload.tar"
    path.write_bytes(_sparse_member(sparse_map))
    with pytest.raises(errors.UsageError, match="upload.tar"):
        scan(str(path), "upload.tar", MemberTable(str(tmp_path / "m.sqlite")), ImportLimits(), threading.Event())
