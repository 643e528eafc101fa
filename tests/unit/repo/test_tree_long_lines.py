"""A long tree line's chunk list is parsed while its pieces arrive, never held whole as text.

In: tree lines as Entry.json_pieces writes them (and hand-made variants), cut into pieces
anywhere, read by decode_lines. Out: the same entries as a whole-line parse gives; lines not
in to_json's exact form parsed as JSON; damaged ones refused typed; and the memory a long line
costs: its ids (twice, while the buffer is made), not its text (twice, plus the ids, before).
"""
from __future__ import annotations

import os
import tracemalloc

import pytest
from ragbackup import errors
from ragbackup.repo import tree
from ragbackup.repo.tree import ChunkIds, Entry, decode_lines, encode_lines

IDS = [os.urandom(32) for _ in range(300)]


def _cut(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _entries() -> list[Entry]:
    return [Entry(b"small", "file", 0o644, 1, 2, 3, 4, IDS[:2]),
            Entry(b"dump.rdb", "file", 0o600, 5, 6, 7, 8, IDS, layout=tree.RDB_RECORDS),
            Entry(b"linked", "file", 0o600, size=9, chunks=IDS[:150], target=b"first]path\xff"),
            Entry(b"sparse", "file", 0o600, size=1 << 40, chunks=IDS[:120], holes=list(range(0, 4000, 2))),
            Entry(b"d", "dir"),
            Entry(b"last", "file", 0o644, chunks=IDS[7:190])]


@pytest.mark.parametrize("size", [1, 2, 7, 66, 67, 68, 1000, 4096, 1 << 20])
def test_long_lines_in_any_pieces_read_back_equal(monkeypatch, size):
    monkeypatch.setattr(tree, "COMPACT_LINE", 100)
    entries = _entries()
    back = list(decode_lines(_cut(b"".join(encode_lines(entries)), size)))
    assert back == entries
    assert isinstance(back[1].chunks, ChunkIds) and list(back[1].chunks) == IDS
    assert back[2].target == b"first]path\xff" and back[3].holes == list(range(0, 4000, 2))


def test_the_last_line_may_lack_its_newline(monkeypatch):
    monkeypatch.setattr(tree, "COMPACT_LINE", 100)
    e = Entry(b"dump.rdb", "file", chunks=IDS)
    assert list(decode_lines(_cut(e.to_json().encode(), 500))) == [e]


@pytest.mark.parametrize("variant", [
    lambda line: line.replace(b'","', b'", "'),           # spaces: valid JSON, not to_json's form
    lambda line: line.replace(IDS[200].hex().encode(), IDS[200].hex().upper().encode()),
    lambda line: line.replace(b'"c":["', b'"c":[ "'),
])
def test_a_list_not_in_to_json_form_is_read_as_json(monkeypatch, variant):
    monkeypatch.setattr(tree, "COMPACT_LINE", 100)
    e = Entry(b"dump.rdb", "file", 0o600, chunks=IDS, target=b"t")
    line = variant(e.to_json().encode())
    assert list(decode_lines(_cut(line + b"\n" + Entry(b"d", "dir").to_json().encode() + b"\n", 700))) == \
        [e, Entry(b"d", "dir")]


@pytest.mark.parametrize("damage", [
    lambda line: line.replace(b'"]', b'"'),                 # the list never ends
    lambda line: line.replace(IDS[100].hex().encode(), b"zz" * 32),
    lambda line: line[:len(line) // 2],                     # cut short
    lambda line: line.replace(b'","', b'",,"', 1),
])
def test_a_damaged_long_line_is_refused_typed(monkeypatch, damage):
    monkeypatch.setattr(tree, "COMPACT_LINE", 100)
    line = damage(Entry(b"dump.rdb", "file", chunks=IDS).to_json().encode())
    with pytest.raises(errors.IntegrityError, match="damaged tree line"):
        list(decode_lines(_cut(line + b"\n", 1000)))


def test_a_long_line_costs_its_ids_not_its_text():
    ids = [os.urandom(32) for _ in range(200_000)]
    data = b"".join(encode_lines([Entry(b"dump.rdb", "file", 0o600, chunks=ids), Entry(b"x", "dir")]))
    pieces = _cut(data, 1 << 20)
    del ids
    tracemalloc.start()
    try:
        back = list(decode_lines(iter(pieces)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    ids_size = 200_000 * 32
    assert len(back) == 2 and len(back[0].chunks) == 200_000
    # the whole 13.4 MB line held, joined and split cost 4.1 times the ids; parsed as it comes, 2.3
    assert peak < 3 * ids_size, f"peak {peak / 1e6:.1f} MB for {ids_size / 1e6:.1f} MB of ids"


@pytest.mark.parametrize("size", [7, 1000, 1 << 20])
def test_with_a_spill_dir_a_long_list_is_kept_in_a_file_and_read_back_in_order(monkeypatch, tmp_path, size):
    """A restore's tree read: a list over SPILL_AFTER bytes of ids is a SpilledIds in an unlinked file
    (read as often as needed), a shorter one stays in memory; every entry reads back the same."""
    monkeypatch.setattr(tree, "COMPACT_LINE", 100)
    monkeypatch.setattr(tree, "SPILL_AFTER", 32 * 160)
    entries = _entries()
    back = list(decode_lines(_cut(b"".join(encode_lines(entries)), size), str(tmp_path)))
    assert [(e.path, e.size, e.layout, list(e.chunks)) for e in back] == \
        [(e.path, e.size, e.layout, list(e.chunks)) for e in entries]
    kinds = {e.path: type(e.chunks) for e in back if e.chunks}
    assert kinds[b"dump.rdb"] is tree.SpilledIds and kinds[b"last"] is tree.SpilledIds
    assert kinds[b"linked"] is ChunkIds and kinds[b"sparse"] is ChunkIds  # 150 and 120 ids: under SPILL_AFTER
    assert os.listdir(tmp_path) == [], "unlinked files: nothing is left behind"
    rdb = back[1].chunks
    assert list(rdb) == IDS == list(rdb) and tree.joined_ids(rdb) == b"".join(IDS)


def test_a_spilled_list_not_in_to_json_form_is_read_as_json(monkeypatch, tmp_path):
    """The form breaks after the spill began: the ids read so far come back from the file."""
    monkeypatch.setattr(tree, "COMPACT_LINE", 100)
    monkeypatch.setattr(tree, "SPILL_AFTER", 32 * 50)
    e = Entry(b"dump.rdb", "file", 0o600, chunks=IDS, target=b"t")
    at = IDS[200].hex().encode() + b'","'
    line = e.to_json().encode().replace(at, at[:-1] + b' "')  # a space after the 201st id: valid JSON
    back, = decode_lines(_cut(line + b"\n", 700), str(tmp_path))
    assert (back.path, back.target, list(back.chunks)) == (e.path, e.target, IDS)
