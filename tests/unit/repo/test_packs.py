"""Pack files: blobs written (O_DIRECT, or in writev batches) read back at their recorded offsets, whatever
the kernel's write sizes."""
import os

import pytest

from ragbackup.repo import packs
from ragbackup.repo.crypto import Cipher, MasterKey
from ragbackup.repo.packs import BLOB_DATA, PackWriter, parse_header, write_all


def test_write_all_writes_everything_in_order_through_short_writes(tmp_path, monkeypatch):
    real = os.writev

    def short(fd, bufs):  # the kernel may take fewer bytes than offered
        head = b"".join(bytes(b) for b in bufs[:2])[:7]
        return real(fd, [head])

    monkeypatch.setattr(os, "writev", short)
    bufs = [b"abc", bytearray(b"defghij"), b"", memoryview(b"klmnopqrstuvwxyz")[2:], b"0123456789" * 5]
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        write_all(fd, bufs)
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"".join(bytes(b) for b in bufs)


@pytest.mark.parametrize("direct_io", [True, False], ids=["o_direct", "buffered"])
def test_blobs_read_back_at_their_offsets_across_write_batches(tmp_path, monkeypatch, direct_io):
    monkeypatch.setattr(packs, "WRITE_BATCH", 10_000)  # many writev batches
    monkeypatch.setattr(packs.direct, "BUFFER", 16_384)  # many direct writes, blobs across their ends
    used = []
    real = packs.direct.enable
    monkeypatch.setattr(packs.direct, "enable", lambda fd: used.append(direct_io) or (direct_io and real(fd)))
    cipher = Cipher(MasterKey.generate())
    w = PackWriter(str(tmp_path), cipher)
    blobs = {os.urandom(32): os.urandom(n) for n in (1, 3000, 9999, 10_001, 50_000, 7)}
    for bid, data in blobs.items():
        w.add(bid, BLOB_DATA, 0, len(data), cipher.seal(data, packs.blob_aad(bid)))
    pack_id, locs = w.finish(fsync=False)
    assert used == [direct_io]
    raw = open(w.path, "rb").read()
    assert len(raw) == w.size
    assert parse_header(cipher, pack_id, raw) == locs
    for loc in locs:
        sealed = raw[loc.offset:loc.offset + loc.length]
        assert cipher.open(sealed, packs.blob_aad(loc.id)) == blobs[loc.id]
