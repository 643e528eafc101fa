"""Runbook export/import decisions, tested as tables: names, member rules, roots, trees, chunking.

In: plain data, small tarballs built in memory, a MemberTable in tmp_path. Out: the layout
and mapping rules, each refusal rule, walk-order trees with hardlink groups and filled-in
parents, the decompression guard, and chunk boundaries identical to the agent's.
"""
from __future__ import annotations

import datetime
import io
import os
import sqlite3
import tarfile
import threading

import pytest
from ragbackup import errors
from ragbackup.agent.capture.pipeline import CapturePipeline, CaptureSettings
from ragbackup.controller.runbook_entries import Member, MemberTable, TreeWalk, key_of
from ragbackup.controller.runbook_export import rechunk, tar_info
from ragbackup.controller.runbook_env import EnvPlan, place_env, plan_env
from ragbackup.controller.runbook_facts import keyspace_counts
from ragbackup.controller.runbook_layout import (Target, archive_hints, inner_names, map_archive, parse_timestamp,
                                                 snapshot_time, stem_of)
from ragbackup.controller.runbook_members import (check_path, check_symlink, common_dir, mtime_ns, normalise,
                                                  ns_text)
from ragbackup.controller.runbook_scan import Archive, EnvBackup, ImportLimits, Scan, scan
from ragbackup.repo import chunking
from ragbackup.repo.tree import Entry
from ragbackup.v1 import agent_pb2

# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("components,expected", [
    ({"vectors": "chroma", "cache": "redis", "documents": "paths", "processing": "paths", "config": "config"},
     {"vectors": "chromadb.tar.gz", "cache": "redis.tar.gz", "documents": "documents.tar.gz",
      "processing": "state.tar.gz", "config": "config.tar.gz"}),
    ({"state": "paths", "processing": "paths"}, {"processing": "state.tar.gz", "state": "state-paths.tar.gz"}),
    ({"redis": "paths", "cache": "redis"}, {"cache": "redis.tar.gz", "redis": "redis-paths.tar.gz"}),
    ({"a": "chroma", "b": "chroma"}, {"a": "chromadb.tar.gz", "b": "b.tar.gz"}),
])
def test_inner_names(components, expected):
    assert inner_names(components) == expected


CONFIGURED = {"chroma": "chroma", "redis": "redis", "documents": "paths", "processing": "paths",
              "settings": "config"}


@pytest.mark.parametrize("stem,hint,expected", [
    ("documents", None, Target("documents", "paths", True)),
    ("chromadb", None, Target("chroma", "chroma", True)),
    ("redis", None, Target("redis", "redis", True)),
    ("config", None, Target("settings", "config", True)),
    ("state", None, Target("processing", "paths", True)),
    ("uploads", None, Target("uploads", "paths", False)),
    ("state", ("processing", "paths"), Target("processing", "paths", True)),
    ("state", ("jobs", "paths"), Target("jobs", "paths", False)),
])
def test_map_archive(stem, hint, expected):
    assert map_archive(stem, CONFIGURED, hint) == expected


def test_map_archive_new_component_takes_the_stems_kind():
    assert map_archive("chromadb", {"documents": "paths"}) == Target("chromadb", "chroma", False)


def test_map_archive_with_several_components_of_the_kind_needs_a_choice():
    two = {"chroma_a": "chroma", "chroma_b": "chroma", "docs": "paths"}
    with pytest.raises(errors.UsageError) as info:
        map_archive("chromadb", two)
    assert "chroma_a, chroma_b" in info.value.message and "--map chromadb=chroma_a" in info.value.message
    assert map_archive("chromadb", two, chosen="chroma_b") == Target("chroma_b", "chroma", True)
    assert map_archive("chromadb", two, ("chroma_a", "chroma"), chosen="chroma_b").name == "chroma_b"
    assert map_archive("chromadb", two, chosen="vectors") == Target("vectors", "chroma", False)
    assert map_archive("notes", two, chosen="docs") == Target("docs", "paths", True)
    with pytest.raises(errors.UsageError, match="holds chroma data, component docs is of kind paths"):
        map_archive("chromadb", two, chosen="docs")


UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("value,expected", [
    ("20250101_020000", datetime.datetime(2025, 1, 1, 2, 0, tzinfo=UTC)),
    ("2025-01-01T02:00:00Z", datetime.datetime(2025, 1, 1, 2, 0, tzinfo=UTC)),
    ("2025-01-01T03:00:00+01:00", datetime.datetime(2025, 1, 1, 2, 0, tzinfo=UTC)),
    ("2025-01-01 02:00:00", datetime.datetime(2025, 1, 1, 2, 0, tzinfo=UTC)),
    (" 20250101T020000 ", datetime.datetime(2025, 1, 1, 2, 0, tzinfo=UTC)),
    (1735696800, datetime.datetime(2025, 1, 1, 2, 0, tzinfo=UTC)),
    ("20251301_020000", None), ("yesterday", None), ("", None), (None, None), (True, None), ([], None),
])
def test_parse_timestamp(value, expected):
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("manifest,filename,expected", [
    ({"timestamp": "20250101_020000"}, "rag-system-backup-20240101_000000.tar.gz",
     (datetime.datetime(2025, 1, 1, 2, 0, tzinfo=UTC), "manifest.json")),
    ({"timestamp": "soon"}, "rag-system-backup-20240101_000000.tar.gz",
     (datetime.datetime(2024, 1, 1, 0, 0, tzinfo=UTC), "filename")),
    (None, "rag-system-backup-20240229_235959.tar", (datetime.datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
                                                      "filename")),
    (None, "upload.tar.gz", (NOW, "import")),
    ({}, "rag-system-backup-20241399_000000.tar.gz", (NOW, "import")),
])
def test_snapshot_time(manifest, filename, expected):
    assert snapshot_time(manifest, filename, NOW) == expected


def _archives(*stems):
    return [Archive(i, f"top/{s}.tar.gz", s) for i, s in enumerate(stems)]


def test_env_goes_to_the_config_tarballs_component_else_the_configured_one():
    arcs = _archives("documents", "config")
    targets = {0: Target("documents", "paths", True), 1: Target("settings", "config", True)}
    assert plan_env(arcs, targets, {"settings": "config"}, None) == EnvPlan(1, targets[1])
    arcs, targets = _archives("documents"), {0: Target("documents", "paths", True)}
    assert plan_env(arcs, targets, {"settings": "config", "documents": "paths"}, None) == \
        EnvPlan(None, Target("settings", "config", True))
    assert plan_env(arcs, targets, {"documents": "paths"}, None).startswith("no config component")
    with pytest.raises(errors.UsageError, match="a, b; choose one with --map .env.backup=a"):
        plan_env(arcs, targets, {"a": "config", "b": "config"}, None)
    assert plan_env(arcs, targets, {"a": "config", "b": "config"}, "b") == EnvPlan(None, Target("b", "config", True))
    assert plan_env(arcs, targets, {}, "documents") == EnvPlan(0, targets[0])
    with pytest.raises(errors.UsageError, match="kind redis"):
        plan_env(arcs, targets, {"cache": "redis"}, "cache")


def test_env_placed_with_mode_0600_unless_the_tarball_has_one(tmp_path):
    table = MemberTable(str(tmp_path / "m.sqlite"))
    s = Scan("x.tar.gz", archives=_archives("config"))
    s.archives[0].root = b"deploy"
    env = EnvBackup("top/.env.backup", b"KEY=secret\n", 1000, 1000, 5 * 10**9)
    arc, path = place_env(env, EnvPlan(0, Target("config", "config", True)), s, table)
    assert (arc.index, path) == (0, b"deploy/.env")
    row = table.get(0, b"deploy/.env")
    assert (row.type, row.mode, row.size, row.uid) == ("file", 0o600, 11, 1000)
    assert "already holds .env" in place_env(env, EnvPlan(0, Target("config", "config", True)), s, table)
    arc, path = place_env(env, EnvPlan(None, Target("settings", "config", True)), s, table)
    assert (arc.index, arc.member, path, len(s.archives)) == (1, "top/.env.backup", b".env", 2)
    assert "secret" not in repr(env)
    table.close()


def test_keyspace_counts_from_info_text():
    text = "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb12:keys=40,expires=0,avg_ttl=0\r\n"
    assert keyspace_counts(text) == {"db0": 3, "db12": 40}
    assert keyspace_counts("# Keyspace\r\n") == {"db0": 0}


def test_stem_and_hints():
    assert [stem_of(n) for n in ("x/chromadb.tar.gz", "a.tgz", "b.tar", "manifest.json", ".tar.gz")] == \
        ["chromadb", "a", "b", None, None]
    hints = archive_hints({"archives": {"state.tar.gz": {"component": "processing", "kind": "paths"},
                                        "bad.tar.gz": {"component": "../x", "kind": "paths"},
                                        "odd.tar.gz": {"component": "odd", "kind": "nosuch"}}})
    assert hints == {"state.tar.gz": ("processing", "paths")}
    assert archive_hints({"archives": []}) == {} and archive_hints(None) == {}


# --------------------------------------------------------------------------- member rules

@pytest.mark.parametrize("name,path", [
    ("./", b""), (".", b""), ("./a/b/", b"a/b"), ("././a", b"a"), ("chroma/chroma/", b"chroma/chroma"),
    ("/abs", b"/abs"),
])
def test_normalise(name, path):
    assert normalise(name) == path


@pytest.mark.parametrize("path,why", [
    (b"/etc/passwd", "absolute"), (b"a/../b", "'..'"), (b"..", "'..'"), (b"a//b", "empty"), (b"a/./b", "'.'"),
])
def test_check_path_refuses(path, why):
    with pytest.raises(errors.UnsafePath, match=why):
        check_path(os.fsdecode(path), path, "t.tar.gz")


@pytest.mark.parametrize("link,target,ok", [
    (b"a/l", b"../b", True), (b"l", b"sub/./x", True), (b"a/b/l", b"../../c", True),
    (b"l", b"..", False), (b"a/l", b"../../x", False), (b"l", b"/etc", False), (b"l", b"", False),
    (b"a/l", b"s/../..", True), (b"a/l", b"s/../../..", False),
])
def test_check_symlink(link, target, ok):
    def check():
        check_symlink("m", link.split(b"/"), target, "t.tar.gz", lambda parts: False)
    if ok:
        check()
    else:
        with pytest.raises(errors.UnsafePath):
            check()


@pytest.mark.parametrize("target", [b"/etc", b"../../x", b".."])
def test_outside_symlinks_pass_when_allowed_and_the_refusal_names_the_option(target):
    check_symlink("m", [b"l"], target, "t", lambda parts: False, outside_ok=True)
    with pytest.raises(errors.UnsafePath, match="--allow-outside-symlinks"):
        check_symlink("m", [b"l"], target, "t", lambda parts: False)


def test_an_empty_target_is_refused_even_when_outside_links_are_allowed():
    with pytest.raises(errors.UnsafePath, match="empty target"):
        check_symlink("m", [b"l"], b"", "t", lambda parts: False, outside_ok=True)


def test_dotdot_out_of_another_symlink_is_refused():
    with pytest.raises(errors.UnsafePath, match="steps out of the symlink 'a/s'"):
        check_symlink("m", [b"x"], b"a/s/../f", "t", lambda parts: parts == [b"a", b"s"])


def test_common_dir():
    c = common_dir(None, [b"chroma", b"chroma"], "dir")
    c = common_dir(c, [b"chroma", b"chroma", b"chroma.sqlite3"], "file")
    assert c == [b"chroma", b"chroma"]
    assert common_dir(c, [b"chroma", b"other"], "dir") == [b"chroma"]
    assert common_dir(None, [b"dump.rdb"], "file") == []


@pytest.mark.parametrize("ns", [0, 1, 1_700_000_000_123_456_789, -123_456_789_012_345_678, 4_102_444_800 * 10**9])
def test_mtime_survives_a_pax_record(ns):
    e = Entry(path=b"f", type="file", mtime_ns=ns, size=0)
    info = tar_info("top", e)
    back = tarfile.TarInfo.frombuf(info.tobuf(tarfile.PAX_FORMAT)[-512:], "utf-8", "surrogateescape")
    back.pax_headers = dict(info.pax_headers)
    assert mtime_ns(back) == ns
    assert ns_text(-1) == "-0.000000001"


def test_rechunk():
    assert list(rechunk([b"ab", b"cde", b"", b"f"], 2)) == [b"ab", b"cd", b"ef"]
    assert list(rechunk([b"abc"], 2)) == [b"ab", b"c"]


# --------------------------------------------------------------------------- trees

def _table(tmp_path, rows: list[tuple[str, str]], links: dict[str, str] | None = None) -> MemberTable:
    t = MemberTable(str(tmp_path / "m.sqlite"))
    for name, typ in rows:
        m = Member(key=key_of(name.encode()), type=typ, mode=0o644, mtime=5, size=1 if typ == "file" else 0,
                   member=name)
        if typ == "hardlink":
            t.add_hardlink(0, m, links[name].encode(), "t")
        else:
            m.target = (links or {}).get(name, "").encode()
            t.add(0, m, "t")
    return t


def _walk(t: MemberTable, root: bytes = b"") -> list[tuple[str, str, str]]:
    return [(e.path.decode(), e.type, e.target.decode()) for e in TreeWalk(t, 0, root, "t")]


def test_walk_order_parents_and_hardlink_groups(tmp_path):
    t = _table(tmp_path, [("d/z", "file"), ("d/a.txt", "file"), ("a", "hardlink"), ("d/b/c", "hardlink")],
               links={"a": "d/z", "d/b/c": "a"})
    assert _walk(t) == [("a", "file", ""), ("d", "dir", ""), ("d/a.txt", "file", ""), ("d/b", "dir", ""),
                        ("d/b/c", "hardlink", "a"), ("d/z", "hardlink", "a")]


def test_root_is_the_shallowest_listed_directory(tmp_path):
    t = _table(tmp_path, [("documents", "dir"), ("documents/tenant", "dir"), ("documents/tenant/x", "file")])
    assert t.find_root(0, [b"documents", b"tenant"]) == b"documents"
    # The root directory member carries the component root's own metadata, as the "." entry.
    assert _walk(t, b"documents") == [(".", "dir", ""), ("tenant", "dir", ""), ("tenant/x", "file", "")]
    t2 = MemberTable(str(tmp_path / "n.sqlite"))
    assert t2.find_root(0, [b"data"]) == b"data" and t2.find_root(0, None) == b""


def test_duplicate_paths(tmp_path):
    t = _table(tmp_path, [("d", "dir"), ("d", "dir")])
    with pytest.raises(errors.UnsafePath, match="appears twice"):
        t.add(0, Member(key=b"d", type="symlink", target=b"/etc", member="d"), "t")


# --------------------------------------------------------------------------- scan guards

def _tarball(path, inner_members: list[tuple[str, bytes]]) -> None:
    def tgz(members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return buf.getvalue()
    path.write_bytes(tgz([("top/documents.tar.gz", tgz(inner_members))]))


def test_scan_guards_total_size(tmp_path):
    path = tmp_path / "x.tar.gz"
    _tarball(path, [("documents/a", b"x" * 600), ("documents/b", b"y" * 600)])
    table = MemberTable(str(tmp_path / "m.sqlite"))
    with pytest.raises(errors.UsageError, match="decompression bomb"):
        scan(str(path), "x.tar.gz", table, ImportLimits(max_bytes=1000), threading.Event())
    s = scan(str(path), "x.tar.gz", MemberTable(str(tmp_path / "n.sqlite")), ImportLimits(), threading.Event())
    assert [(a.stem, a.root) for a in s.archives] == [("documents", b"documents")] and s.bytes_total == 1200


def test_scan_refuses_a_tarball_without_component_tarballs(tmp_path):
    path = tmp_path / "x.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        t.addfile(tarfile.TarInfo("readme"), io.BytesIO(b""))
    with pytest.raises(errors.UsageError, match="no component tarballs"):
        scan(str(path), "x.tar.gz", MemberTable(str(tmp_path / "m.sqlite")), ImportLimits(), threading.Event())
    path.write_bytes(b"not a tarball at all")
    with pytest.raises(errors.UsageError, match="not a readable tar archive"):
        scan(str(path), "x.tar.gz", MemberTable(str(tmp_path / "n.sqlite")), ImportLimits(), threading.Event())


def _outer(path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w:gz") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))


def test_scan_keeps_env_backup_and_lists_what_it_skips(tmp_path):
    inner = tmp_path / "inner.tar.gz"
    _outer(inner, [("documents/a", b"x")])
    path = tmp_path / "x.tar.gz"
    _outer(path, [("top/documents.tar.gz", inner.read_bytes()), ("top/.env.backup", b"K=secret\n"),
                  ("top/notes.txt", b"hello")])
    s = scan(str(path), "x.tar.gz", MemberTable(str(tmp_path / "m.sqlite")), ImportLimits(), threading.Event())
    assert (s.env.member, s.env.data) == ("top/.env.backup", b"K=secret\n")
    assert s.skipped == [("top/notes.txt", "not a component tarball, manifest.json or .env.backup")]
    with pytest.raises(errors.UsageError, match="larger than 4 bytes"):
        scan(str(path), "x.tar.gz", MemberTable(str(tmp_path / "n.sqlite")), ImportLimits(max_env=4),
             threading.Event())
    _outer(path, [("top/documents.tar.gz", inner.read_bytes()), ("top/.env.backup", b"A"), (".env.backup", b"B")])
    with pytest.raises(errors.UsageError, match="two .env.backup files"):
        scan(str(path), "x.tar.gz", MemberTable(str(tmp_path / "o.sqlite")), ImportLimits(), threading.Event())
    with tarfile.open(path, "w:gz") as t:
        link = tarfile.TarInfo("top/.env.backup")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        t.addfile(link)
    with pytest.raises(errors.UnsafePath, match="symlink"):
        scan(str(path), "x.tar.gz", MemberTable(str(tmp_path / "p.sqlite")), ImportLimits(), threading.Event())


# --------------------------------------------------------------------------- chunking

def _agent_cut(params: chunking.ChunkerParams, path: str) -> list[bytes]:
    """The chunk ids a real capture pipeline gives the file (as `_ids` of import chunks)."""
    settings = CaptureSettings(root=os.fsencode(os.path.dirname(path)), exclude=(), id_key=b"k" * 32,
                               chunker=params, compression_level=3, workers=2, parent=None, cache=None)
    offers = []

    def next_want():
        o = offers.pop(0)
        return agent_pb2.ChunkWant(seq=o.seq, indexes=[])
    entries = []
    for ev in CapturePipeline(settings, next_want).run():
        if ev.WhichOneof("kind") == "offer":
            offers.append(ev.offer)
        elif ev.WhichOneof("kind") == "entries":
            entries.extend(ev.entries.entries)
    [entry] = [e for e in entries if e.path == os.fsencode(os.path.basename(path))]
    return list(entry.chunks)


def _sqlite_file(path: str) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (v TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("row %d " % i * 30,) for i in range(4000)])
    db.commit()
    db.close()


@pytest.mark.parametrize("kind", ["empty", "small", "large", "sqlite"])
def test_cut_file_matches_the_agents_chunks(tmp_path, kind):
    params = chunking.ChunkerParams(64 * 1024, 128 * 1024, 512 * 1024, seed=7)
    path = str(tmp_path / "f")
    if kind == "sqlite":
        _sqlite_file(path)
    else:
        with open(path, "wb") as f:
            f.write(os.urandom({"empty": 0, "small": 1000, "large": 3_000_000}[kind]))
    with open(path, "rb") as f:
        ours = list(chunking.cut_file(params, f))
    assert [chunking.chunk_id(b"k" * 32, c) for c in ours] == _agent_cut(params, path)
    assert b"".join(ours) == open(path, "rb").read()
