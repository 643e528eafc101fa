"""The capture pipeline stores a Redis RDB by record only when the controller records that layout."""
from __future__ import annotations

import logging
import sqlite3
import types
from pathlib import Path

from ragbackup import entry_parts
from ragbackup.repo import rdb, rdb_layout
from ragbackup.repo.ids import chunk_id

from ragbackup.agent import cache
from ragbackup.agent.cache import CacheReader
from ragbackup.agent.capture import pipeline
from fixtures.capture_events import KEY, cached_capture, capture_all, saved_rdb


def test_rdb_by_record_only_when_the_layout_is_named(redis_server, tmp_path, monkeypatch, caplog):
    c = redis_server.client()
    for i in range(3000):
        c.set(f"key:{i}", f"value {i} " * 10)
    root, data = saved_rdb(redis_server, tmp_path)
    root = Path(root)
    unknown = data[:rdb.HEADER_LEN] + bytes([rdb.OP_MODULE_AUX]) + data[rdb.HEADER_LEN:]
    (root / "module.rdb").write_bytes(unknown)

    entries, stored = capture_all(str(root), (rdb_layout.LAYOUT,))
    e = entries[b"dump.rdb"]
    assert e.layout == rdb_layout.LAYOUT and e.size == len(data)
    assert b"".join(rdb_layout.rebuild(stored[c] for c in e.chunks)) == data
    # the bounded-memory capture stores exactly the chunks of the layout's in-memory canonicalise
    assert list(e.chunks) == [chunk_id(KEY, c) for c in rdb_layout.canonicalise(data, rdb.parse(data))]
    m = entries[b"module.rdb"]  # not known record by record: plain chunks
    assert m.layout == "" and b"".join(stored[c] for c in m.chunks) == unknown

    entries, stored = capture_all(str(root), ())  # a controller that records no layouts
    e = entries[b"dump.rdb"]
    assert e.layout == "" and b"".join(stored[c] for c in e.chunks) == data

    assert "stored by record" not in caplog.text
    monkeypatch.setattr(pipeline, "RDB_MAX_BYTES", len(data) - 1)  # over the size stored by record
    with caplog.at_level(logging.WARNING, logger="ragbackup.agent"):
        entries, stored = capture_all(str(root), (rdb_layout.LAYOUT,))
    assert entries[b"dump.rdb"].layout == ""
    assert f"dump.rdb: a Redis RDB of {len(data)} bytes, over the {len(data) - 1} stored by record" in caplog.text


def _rdb_root(redis_server, tmp_path) -> tuple[str, bytes]:
    c = redis_server.client()
    for i in range(2000):
        c.set(f"key:{i}", f"value {i} " * 10)
    return saved_rdb(redis_server, tmp_path)


def _restored(e, stored: dict[bytes, bytes], out) -> bytes:
    """The bytes TreeWriter restores into `out` for entry `e` (dump.rdb) from its `stored` chunks."""
    from ragbackup.agent import restore
    from ragbackup.v1 import common_pb2

    writer = restore.TreeWriter(str(out), KEY)
    wire = common_pb2.Entry(path=b"dump.rdb", type=common_pb2.ENTRY_TYPE_FILE, size=e.size, mode=0o600,
                            layout=e.layout, chunk_ids=b"".join(e.chunks))
    writer.write(wire, lambda cid: stored[cid])
    writer.finish()
    return (out / "dump.rdb").read_bytes()


def test_an_unchanged_rdb_is_reused_from_the_cache_with_its_layout(redis_server, tmp_path):
    """A no-change backup neither reads nor re-sorts an RDB stored by record: its cache row keeps the layout."""
    root, data = _rdb_root(redis_server, tmp_path)
    cache_dir = str(tmp_path / "cache")
    first, stored = cached_capture(root, cache_dir, "one", (rdb_layout.LAYOUT,), None)
    second, sent = cached_capture(root, cache_dir, "two", (rdb_layout.LAYOUT,), "one")

    e1, e2 = first[b"dump.rdb"], second[b"dump.rdb"]
    assert e2.layout == rdb_layout.LAYOUT and e2.size == len(data)
    assert list(e2.chunks) == list(e1.chunks) and not sent  # nothing read, nothing sent again
    assert b"".join(rdb_layout.rebuild(stored[c] for c in e2.chunks)) == data

    # a controller that no longer records the layout gets the file's bytes, not the cached records
    third, _ = cached_capture(root, cache_dir, "three", (), "two")
    e3 = third[b"dump.rdb"]
    assert e3.layout == "" and e3.size == len(data) and list(e3.chunks) != list(e1.chunks)


def test_a_cache_written_before_layouts_still_reads_as_plain_files(tmp_path):
    """Old cache files have no layout column: their rows are plain files."""
    cache_dir = tmp_path / "cache"
    (cache_dir / "c").mkdir(parents=True)
    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    st = f.stat()
    db = sqlite3.connect(cache_dir / "c" / "old.sqlite")
    db.execute("CREATE TABLE files (path BLOB PRIMARY KEY, size INT, mtime_ns INT, ino INT, ctime_ns INT, "
               "chunks BLOB) WITHOUT ROWID")
    db.execute("INSERT INTO files VALUES (?,?,?,?,?,?)", (b"f", 100, st.st_mtime_ns, st.st_ino, st.st_ctime_ns,
                                                          b"a" * 32 + b"b" * 32))
    db.commit()
    db.close()
    got = CacheReader.open(str(cache_dir), "c", "old").lookup(b"f", st)
    assert got is not None and got.chunks == [b"a" * 32, b"b" * 32] and got.layout == ""


def test_an_rdb_over_the_one_message_limit_is_taken_by_record_for_a_controller_that_reads_parts(
        redis_server, tmp_path, monkeypatch):
    """Over RDB_MAX_BYTES (its entry would not fit one message) but under RDB_MAX_BYTES_PARTS: by record,
    its ids sent in parts, when the controller reads split entries; as any file above both."""
    root, data = _rdb_root(redis_server, tmp_path)
    monkeypatch.setattr(pipeline, "RDB_MAX_BYTES", len(data) - 1)
    monkeypatch.setattr(pipeline, "RDB_MAX_BYTES_PARTS", len(data))
    monkeypatch.setattr(entry_parts, "PART_IDS", 4)
    e = capture_all(root, (rdb_layout.LAYOUT,))[0][b"dump.rdb"]
    assert e.layout == ""  # a controller that reads no parts: the one-message limit holds
    entries, stored = capture_all(root, (rdb_layout.LAYOUT,), parts=True)
    e = entries[b"dump.rdb"]
    assert e.layout == rdb_layout.LAYOUT and len(e.chunks) > 4
    assert b"".join(rdb_layout.rebuild(stored[c] for c in e.chunks)) == data
    monkeypatch.setattr(pipeline, "RDB_MAX_BYTES_PARTS", len(data) - 1)
    assert capture_all(root, (rdb_layout.LAYOUT,), parts=True)[0][b"dump.rdb"].layout == ""


def test_a_restored_rdb_spools_its_records_on_the_targets_disk_not_the_system_temp_dir(
        redis_server, tmp_path, monkeypatch):
    """The rebuild spools about the file's size; /tmp may be memory (tmpfs, Debian's default since 13),
    so the agent has its rebuild worker spool in the tree it writes (an unlinked file) and the file
    restores byte-identical. (That the worker spools where it is told: tests/unit/agent/test_rebuild_worker.py.)"""
    from ragbackup.agent import restore

    root, data = _rdb_root(redis_server, tmp_path)
    entries, stored = capture_all(root, (rdb_layout.LAYOUT,))
    e = entries[b"dump.rdb"]
    dirs = []
    real = restore.rebuild_apart

    def noting(chunks, spool_dir):
        dirs.append(spool_dir)
        return real(chunks, spool_dir)
    monkeypatch.setattr(restore, "rebuild_apart", noting)
    monkeypatch.setattr(restore, "REBUILD_APART_FROM", len(data))  # this one by the worker
    out = tmp_path / "out"
    assert _restored(e, stored, out) == data
    assert dirs == [str(out)]


def test_a_long_id_list_waits_in_the_scratch_dir_not_in_memory_through_capture_and_cache(
        redis_server, tmp_path, monkeypatch):
    """With split entries, an RDB's ids (35 MB at 4,000,000 keys) move to an unlinked file in the scratch
    dir once over tree.SPILL_AFTER, when taken and when read back from the cache; the entries sent are
    the same as with the ids held in memory."""
    from ragbackup.repo import tree

    root, data = _rdb_root(redis_server, tmp_path)
    monkeypatch.setattr(entry_parts, "PART_IDS", 4)
    held, _ = cached_capture(root, str(tmp_path / "held"), "one", (rdb_layout.LAYOUT,), None, parts=True)
    held_again, _ = cached_capture(root, str(tmp_path / "held"), "two", (rdb_layout.LAYOUT,), "one", parts=True)

    dirs = []  # where the id buffers (tree.py) made their files
    real = tree.tempfile.TemporaryFile

    def noting(*args, **kwargs):
        dirs.append(kwargs.get("dir"))
        return real(*args, **kwargs)
    monkeypatch.setattr(tree, "tempfile", types.SimpleNamespace(TemporaryFile=noting))
    monkeypatch.setattr(tree, "SPILL_AFTER", 64)
    monkeypatch.setattr(cache, "LONG_IDS", 64)
    scratch = str(tmp_path / "scratch")
    first, stored = cached_capture(root, str(tmp_path / "c"), "one", (rdb_layout.LAYOUT,), None, True, scratch)
    taken = len(dirs)
    second, sent = cached_capture(root, str(tmp_path / "c"), "two", (rdb_layout.LAYOUT,), "one", True, scratch)

    assert (taken, len(dirs), set(dirs)) == (1, 2, {scratch})  # taken; read back from the cache
    e1, e2 = first[b"dump.rdb"], second[b"dump.rdb"]
    assert len(e1.chunks) > 4 and not sent
    assert list(e1.chunks) == list(e2.chunks) == list(held[b"dump.rdb"].chunks) == list(held_again[b"dump.rdb"].chunks)
    assert b"".join(rdb_layout.rebuild(stored[c] for c in e2.chunks)) == data


def test_an_rdb_below_the_workers_size_is_rebuilt_in_the_agent(redis_server, tmp_path, monkeypatch):
    """A small RDB (one of many in a paths component) is not worth a process: rebuilt in place, same bytes."""
    from ragbackup.agent import restore

    root, data = _rdb_root(redis_server, tmp_path)
    entries, stored = capture_all(root, (rdb_layout.LAYOUT,))
    e = entries[b"dump.rdb"]
    apart = []
    monkeypatch.setattr(restore, "rebuild_apart", lambda chunks, spool_dir: apart.append(spool_dir))
    monkeypatch.setattr(restore, "REBUILD_APART_FROM", len(data) + 1)
    assert _restored(e, stored, tmp_path / "out") == data and apart == []
