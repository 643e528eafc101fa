"""Hostile input: runbook tarballs and their manifest.json (controller/runbook_*.py): malicious members
(absolute paths, `..`, links pointing out, devices, huge sparse members, duplicates), truncated gzip."""
from __future__ import annotations

import io
import json
import os
import tarfile
import threading

import pytest
from hypothesis import strategies as st

from reliability.fuzzlib import expect_typed, fuzz, mutated

from ragbackup import errors
from ragbackup.config import load_controller_config
from ragbackup.controller.runbook_entries import MemberTable, TreeWalk
from ragbackup.controller.runbook_import import ImportRequest, import_upload
from ragbackup.controller.runbook_layout import archive_hints, snapshot_time
from ragbackup.controller.runbook_scan import ImportLimits, inner_members, scan
from ragbackup.controller.state import Controller
from ragbackup.repo.tree import check_entry

NAMES = ["data", "data/a.txt", "data/sub/b.bin", "./data/c", "data/sub/", "/etc/evil", "../escape",
         "data/../../escape", "data//d", "data/./e", "data/link", "data/link/x", "a" * 120 + "/long", "",
         "data/a.txt/under-file", ".", "..", "data/\x00nul"]
LINKS = ["../../../escape", "/etc/passwd", "a.txt", "sub/../..", "link/..", "", "data/a.txt", "missing",
         "../escape", "sub", "data/link/..", "."]
KINDS = ["file", "file", "dir", "symlink", "hardlink", "chr", "blk", "fifo", "sparse", "dup"]
MEMBER = st.tuples(st.sampled_from(KINDS), st.sampled_from(NAMES), st.sampled_from(LINKS), st.binary(max_size=40),
                   st.integers(0, 0o7777))
STEMS = ["documents", "chromadb", "redis", "config", "state", "../evil", "/abs/x", "two words", ".hidden"]
MANIFEST = st.one_of(
    st.just(None), st.binary(max_size=30),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
                 lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids,
                                                                                       max_size=3)),
                 max_leaves=8).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({
        "timestamp": st.one_of(st.text(max_size=20), st.integers(-2**70, 2**70), st.floats(),
                               st.sampled_from(["20250101_020000", "2025-13-45T99:99:99", "0000-00-00"])),
        "archives": st.dictionaries(st.sampled_from([f"{s}.tar.gz" for s in STEMS]),
                                    st.fixed_dictionaries({"component": st.sampled_from(STEMS + ["ok"]),
                                                           "kind": st.sampled_from(["paths", "redis", "x"])}),
                                    max_size=3)}).map(lambda v: json.dumps(v).encode()),
    st.just(b"[" * 5_000))  # nesting deeper than the JSON parser recurses


def _info(name: str, **kw) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def _add_member(tar: tarfile.TarFile, spec, prev: list[str]) -> None:
    kind, name, link, data, mode = spec
    if kind == "dup" and prev:
        kind, name = "file", prev[-1]
    prev.append(name)
    if kind in ("file", "dup"):
        tar.addfile(_info(name, size=len(data), mode=mode), io.BytesIO(data))
    elif kind == "dir":
        tar.addfile(_info(name, type=tarfile.DIRTYPE, mode=mode))
    elif kind in ("symlink", "hardlink"):
        tar.addfile(_info(name, type=tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE, linkname=link))
    elif kind in ("chr", "blk", "fifo"):
        typ = {"chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
        tar.addfile(_info(name, type=typ, devmajor=1, devminor=3))
    else:  # a pax 1.0 sparse member: 512 bytes of data stored, a terabyte when expanded
        body = b"1\n0\n512\n".ljust(512, b"\0") + data.ljust(512, b"x")
        ti = _info(name, size=len(body), pax_headers={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                                        "GNU.sparse.name": name or "x",
                                                        "GNU.sparse.realsize": str(10**12)})
        tar.addfile(ti, io.BytesIO(body))


def _tar(add, gz: bool) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        add(tar)
    return out.getvalue()


def build(spec) -> bytes:
    """An outer runbook tarball: inner component tarballs of the given members, manifest.json, .env.backup."""
    inners, manifest, env, gz = spec

    def outer(tar):
        tar.addfile(_info("rag-system-backup-20250102_030000", type=tarfile.DIRTYPE))
        for stem, members in inners:
            prev: list[str] = []
            data = _tar(lambda t: [_add_member(t, m, prev) for m in members], True)
            tar.addfile(_info(f"rag-system-backup-20250102_030000/{stem}.tar.gz", size=len(data)), io.BytesIO(data))
        if manifest is not None:
            tar.addfile(_info("rag-system-backup-20250102_030000/manifest.json", size=len(manifest)),
                        io.BytesIO(manifest))
        if env:
            tar.addfile(_info("rag-system-backup-20250102_030000/.env.backup", size=len(env)), io.BytesIO(env))
    return _tar(outer, gz)


SPECS = st.tuples(st.lists(st.tuples(st.sampled_from(STEMS), st.lists(MEMBER, max_size=6)), max_size=3),
                  MANIFEST, st.one_of(st.just(b""), st.binary(min_size=1, max_size=20)), st.booleans())
TARBALLS = st.one_of(SPECS.map(build), mutated(SPECS.map(build), noise=0))


def _read_all(path: str, tmp: str) -> None:
    """What an import reads before it stores anything: both passes, every tree entry checked."""
    table = MemberTable(os.path.join(tmp, "members.sqlite"))
    try:
        s = scan(path, "upload.tar.gz", table, ImportLimits(), threading.Event())
        archive_hints(s.manifest), snapshot_time(s.manifest, "upload.tar.gz", None)
        for arc in s.archives:
            for e in TreeWalk(table, arc.index, arc.root, arc.member):
                check_entry(e)
        for _, _, f in inner_members(path, s, threading.Event()):
            f.read()
    finally:
        table.close()


def test_hostile_runbook_tarballs_are_refused_typed_before_anything_is_stored(record_property, tmp_path):
    """A hostile or damaged runbook tarball (bad member paths, links out, devices, sparse bombs, truncated gzip) is refused typed"""
    path = str(tmp_path / "upload.tar.gz")

    def check(data: bytes):
        with open(path, "wb") as f:
            f.write(data)
        expect_typed(lambda: _read_all(path, str(tmp_path)), errors.UsageError, errors.UnsafePath,
                     errors.UnsupportedFormat)
    record_property("tries", fuzz(check, TARBALLS))


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctl")
    cfg = d / "controller.toml"
    cfg.write_text(f'[controller]\nsocket = "{d}/ctl.sock"\nstate_dir = "{d}/state"\n'
                   f'[repository]\npath = "{d}/repo"\npassword = "pw"\n[tls]\ninsecure = true\n'
                   '[agents.a]\naddress = "127.0.0.1:1"\n'
                   f'[components.documents]\nkind = "paths"\nagent = "a"\npath = "{d}/live"\n')
    ctl = Controller(load_controller_config(str(cfg)))
    ctl.repositories.init()
    yield ctl, d
    ctl.repositories.close()


def _tree(root: str, skip: str) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [n for n in dirnames if os.path.join(dirpath, n) != skip]
        out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return out


def test_hostile_runbook_imports_write_nothing_outside_the_repository_and_staging(record_property, controller):
    """ragctl import of a hostile runbook tarball: refused typed or imported, and nothing appears outside the repository"""
    ctl, d = controller
    outside = str(d.parent)

    def check(data: bytes):
        before = _tree(outside, str(d))
        state_before = set(os.listdir(os.path.join(str(d), "state")))
        req = ImportRequest(filename="upload.tar.gz", reason="fuzz", user="fuzz")
        m = expect_typed(lambda: import_upload(ctl, req, [data], threading.Event()), errors.UsageError,
                         errors.UnsafePath, errors.UnsupportedFormat, errors.NotFound)
        assert _tree(outside, str(d)) == before  # no member escaped: nothing new beside the controller's dirs
        assert not os.path.lexists(os.path.join(outside, "escape")) and not os.path.lexists("/etc/evil")
        assert set(os.listdir(os.path.join(str(d), "state"))) <= state_before | {"staging", "locks"}
        assert os.listdir(ctl.staging_dir) == []  # the spool and its work files are gone
        if m is not None:
            for comp in m.components.values():
                for e in ctl.repo().read_tree(comp.tree_ids()):
                    check_entry(e)
    record_property("tries", fuzz(check, TARBALLS, fast=25, long=2_000))
