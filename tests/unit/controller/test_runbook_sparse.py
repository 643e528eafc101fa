"""Sparse files and tarballs: an export writes holes as zeros (plain tar gets the file byte for byte);
an import turns a sparse map into holes and refuses a member expanding past the limit."""
import tarfile

import pytest
from ragbackup import errors
from ragbackup.config import load_controller_config
from ragbackup.controller.runbook_export import _BlobReader
from ragbackup.controller.runbook_members import check_expansion, sparse_holes
from ragbackup.repo.tree import Entry


class _Blobs:
    def __init__(self, blobs: dict[bytes, bytes]):
        self.blobs = blobs

    def read_blob(self, cid: bytes) -> bytes:
        return self.blobs[cid]


def test_holes_read_as_zeros_between_the_chunks():
    a, b = b"A" * 10, b"B" * 5
    holes = [0, 3, 13, 2_000_000, 2_000_018, 7]
    e = Entry(path=b"f", type="file", size=2_000_025, chunks=[b"a", b"b"], holes=holes)
    reader = _BlobReader(_Blobs({b"a": a, b"b": b}), e.chunks, e.holes)
    data = reader.read(e.size)
    assert data == bytes(3) + a + bytes(2_000_000) + b + bytes(7)
    reader.check_done(e)


def _sparse_info(size: int, runs: list[tuple[int, int]]):
    m = tarfile.TarInfo("documents/disk.img")
    m.size, m.sparse = size, runs
    return m


def test_sparse_map_becomes_holes():
    assert sparse_holes(_sparse_info(100, [(10, 5), (50, 10), (100, 0)])) == [0, 10, 15, 35, 60, 40]
    assert sparse_holes(_sparse_info(100, [(0, 100)])) == []


def test_expansion_limit_refuses_with_exit_9_and_zero_turns_it_off():
    m = _sparse_info(10 << 30, [(3 << 30, 4096)])
    with pytest.raises(errors.ExpansionRefused) as info:
        check_expansion(m, "documents.tar.gz in x.tar.gz", 1000)
    assert info.value.exit_code == 9 and "'documents/disk.img'" in info.value.message
    check_expansion(m, "w", 0)
    check_expansion(_sparse_info(1 << 20, [(0, 4096)]), "w", 1000)  # 256x: accepted


_CONFIG = """
[controller]
state_dir = "/tmp/x"
[repository]
path = "/tmp/repo"
password = "pw"
[tls]
insecure = true
"""


@pytest.mark.parametrize("extra,expected", [("", 1000), ("[import]\nmax_expansion_ratio = 0\n", 0),
                                            ("[import]\nmax_expansion_ratio = 50\n", 50)])
def test_import_limit_from_config(tmp_path, extra, expected):
    path = tmp_path / "c.toml"
    path.write_text(_CONFIG + extra)
    assert load_controller_config(str(path)).imports.max_expansion_ratio == expected


@pytest.mark.parametrize("value", ["-1", '"big"', "1.5"])
def test_bad_import_limit_names_the_key(tmp_path, value):
    path = tmp_path / "c.toml"
    path.write_text(_CONFIG + f"[import]\nmax_expansion_ratio = {value}\n")
    with pytest.raises(errors.ConfigError) as info:
        load_controller_config(str(path))
    assert "[import] max_expansion_ratio" in info.value.message and str(path) in info.value.message
