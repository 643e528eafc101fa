"""Runbook compatibility through the real daemons: `ragctl export` and `ragctl import`.

In: one LocalStack for the module (agent and controller processes) with documents, processing,
config, chroma and redis components; trees built here, tarballs made with GNU tar the old
runbook's way and hostile ones made with Python's tarfile. Out: exports that plain `tar -xzf`
turns back into the same files, old runbook tarballs imported and restored byte for byte,
hostile tarballs refused (exit 9, member named, nothing stored), export/import round trips.
"""
from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from ragbackup import errors
from ragbackup.localstack import LocalStack
from ragbackup.v1 import controller_pb2, controller_pb2_grpc

from fixtures.stack import assert_same_tree, backup, build_tree, ragctl_output, show, snapshot_ids, tree_state, write

COMPONENTS = (("documents", "paths"), ("processing", "paths"), ("config", "config"), ("chroma", "chroma"),
              ("redis", "redis"))
BACKED_UP = "documents,processing,config"
RUNBOOK_KEYS = {"timestamp", "version", "snapshot_id", "components", "size_bytes", "files", "facts"}
TS = "20250101_020000"
TOP = f"rag-system-backup-{TS}"
S = 1_000_000_000  # GNU tar's default format keeps whole seconds


@dataclass
class Env:
    stack: LocalStack
    data: Path
    sid: str  # a backup of documents, processing and config


def make_data(data: Path) -> None:
    """documents: a build_tree (odd names, links, hardlinks, modes); processing; config with secrets."""
    build_tree(str(data / "documents"), n_files=300, big_files=1)
    os.unlink(data / "documents" / "links" / "absolute")  # an import refuses absolute symlinks
    (data / "processing").mkdir()
    for i in range(40):
        write(str(data / "processing" / f"job-{i:04d}.json"), json.dumps({"id": i, "status": "done"}).encode(),
              0o640, 1_700_000_000_123_456_789 + i)
    (data / "config").mkdir()
    write(str(data / "config" / ".env"), b"OPENAI_API_KEY=sk-test\nREDIS_PASSWORD=pw\n", 0o600)
    write(str(data / "config" / "docker-compose.yml"), b"services:\n  redis:\n    image: redis:7\n", 0o644)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("runbook")
    data = base / "data"
    make_data(data)
    st = LocalStack(str(base / "stack"))
    for name, kind in COMPONENTS:
        st.add_component(name, kind, str(data / name))
    try:
        st.start()
        st.ragctl("init")
        yield Env(st, data, backup(st, "--components", BACKED_UP)["id"])
    finally:
        st.stop()
        for proc in ("agent", "controller"):
            print(f"--- {st.workdir}/{proc}.log (tail)\n{st.log_tail(proc, 15)}")


def tar(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["tar", *args], cwd=cwd, check=True, capture_output=True)


def import_(st: LocalStack, path: Path, *args: str) -> str:
    return st.ragctl("import", str(path), *args).stdout.strip()


def repository_files(st: LocalStack) -> set[str]:
    """Every object of the local repository (packs being written in tmp/ aside)."""
    root = Path(st.repo_dir)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.parts[len(root.parts)] != "tmp"}


# --------------------------------------------------------------------------- (a) export layout

def test_export_is_the_runbook_layout_and_plain_tar_restores_it(env, tmp_path):
    sid = backup(env.stack, "--components", BACKED_UP, "--reason", "before export")["id"]
    out = tmp_path / "x.tar.gz"
    env.stack.ragctl("export", "latest", "-o", str(out))
    assert oct(out.stat().st_mode & 0o777) == oct(0o600)
    assert not (tmp_path / "x.tar.gz.part").exists()
    ex = tmp_path / "ex"
    ex.mkdir()
    tar("-xzf", str(out), "-C", str(ex))
    top = ex / sid
    assert sorted(os.listdir(ex)) == [sid]
    assert sorted(os.listdir(top)) == ["config.tar.gz", "documents.tar.gz", "manifest.json", "state.tar.gz"]
    for inner in ("config.tar.gz", "documents.tar.gz", "state.tar.gz"):
        tar("-xzf", inner, cwd=top)
    for name in ("documents", "processing", "config"):
        assert_same_tree(tree_state(str(env.data / name)), str(top / name), f"exported {name}")
    manifest = json.loads((top / "manifest.json").read_text())
    assert RUNBOOK_KEYS <= set(manifest)
    m = show(env.stack, sid)
    assert manifest["snapshot_id"] == sid and manifest["timestamp"] == sid.removeprefix("rag-system-backup-")[:15]
    assert manifest["components"] == ["config", "documents", "processing"]
    assert manifest["files"] == sum(c["stats"]["files"] for c in m["components"].values())
    assert manifest["size_bytes"] == sum(c["stats"]["bytes_total"] for c in m["components"].values())
    assert manifest["archives"]["state.tar.gz"] == {"component": "processing", "kind": "paths"}


def test_export_default_name_and_refusal_to_overwrite(env, tmp_path):
    argv = env.stack.ragctl_argv("export", env.sid)
    cp = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert cp.returncode == 0, ragctl_output(cp)
    assert (tmp_path / f"{env.sid}.tar.gz").is_file()
    again = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == errors.UsageError.exit_code, ragctl_output(again)
    assert "already exists" in again.stderr
    nope = env.stack.ragctl("export", "rag-system-backup-19990101_000000", check=False)
    assert nope.returncode == errors.NotFound.exit_code, ragctl_output(nope)


# --------------------------------------------------------------------------- (b) the old bash runbook

def whole_seconds(root: Path) -> None:
    """What GNU tar's default format keeps: mtimes in whole seconds (dirs last, deepest first)."""
    paths = sorted(root.rglob("*"), key=lambda p: (p.is_dir(), -len(p.parts)))
    for p in paths:
        t = (p.lstat().st_mtime_ns // S) * S
        os.utime(p, ns=(t, t), follow_symlinks=False)


def chroma_dir(root: Path) -> None:
    """A Chroma persist dir: chroma.sqlite3 (larger than one chunk) and an HNSW segment dir."""
    root.mkdir(parents=True)
    db = sqlite3.connect(root / "chroma.sqlite3")
    db.execute("CREATE TABLE embeddings (id INTEGER PRIMARY KEY, doc TEXT)")
    db.executemany("INSERT INTO embeddings (doc) VALUES (?)", [(f"chunk {i} " * 40,) for i in range(3000)])
    db.commit()
    db.close()
    seg = root / "6f1c2b9e-0000-4c4c-8c8c-0123456789ab"
    seg.mkdir()
    for name, size in (("data_level0.bin", 700_000), ("header.bin", 100), ("length.bin", 4000),
                       ("link_lists.bin", 0)):
        write(str(seg / name), os.urandom(size), 0o644)


def old_runbook_sources(src: Path) -> None:
    chroma_dir(src / "chroma" / "chroma")
    (src / "redisdata").mkdir()
    write(str(src / "redisdata" / "dump.rdb"), b"REDIS0011" + os.urandom(50_000), 0o644)
    docs = src / "app" / "documents"
    (docs / "tenant a" / "2024").mkdir(parents=True)
    write(str(docs / "tenant a" / "2024" / "report.pdf"), os.urandom(300_000), 0o640)
    write(str(docs / "readme.txt"), b"uploaded documents\n", 0o644)
    os.symlink("tenant a/2024/report.pdf", docs / "latest.pdf")
    (src / "app" / "processing_state").mkdir()
    write(str(src / "app" / "processing_state" / "queue.json"), b'{"pending": []}', 0o600)
    deploy = src / "deploy"
    (deploy / "monitoring").mkdir(parents=True)
    (deploy / "k8s").mkdir()
    write(str(deploy / ".env"), b"OPENAI_API_KEY=sk-live\n", 0o600)
    write(str(deploy / "docker-compose.yml"), b"services: {}\n", 0o644)
    write(str(deploy / "docker-compose.prod.yml"), b"services: {prod: {}}\n", 0o644)
    write(str(deploy / "monitoring" / "prometheus.yml"), b"scrape_configs: []\n", 0o644)
    write(str(deploy / "k8s" / "deployment.yaml"), b"kind: Deployment\n", 0o644)
    (src / "notes").mkdir()
    write(str(src / "notes" / "oncall.md"), b"# on call\n", 0o644)
    whole_seconds(src)


def old_runbook_tarball(src: Path, out: Path) -> Path:
    """What the bash runbook did, with the real tar command (no manifest.json)."""
    d = out / TOP
    d.mkdir(parents=True)
    tar("-czf", str(d / "chromadb.tar.gz"), "-C", str(src), "chroma/chroma")  # docker exec ... /chroma/chroma
    tar("-czf", str(d / "redis.tar.gz"), "-C", str(src / "redisdata"), ".")  # members ./ and ./dump.rdb
    tar("-czf", str(d / "documents.tar.gz"), "-C", str(src / "app"), "documents")
    tar("-czf", str(d / "state.tar.gz"), "-C", str(src / "app"), "processing_state")
    tar("-czf", str(d / "config.tar.gz"), ".env", "docker-compose.yml", "docker-compose.prod.yml", "monitoring/",
        "k8s/", cwd=src / "deploy")
    tar("-czf", str(d / "extras.tar.gz"), str(src / "notes"))  # absolute: GNU tar strips the leading /
    tar("-czf", f"{TOP}.tar.gz", f"{TOP}/", cwd=out)
    return out / f"{TOP}.tar.gz"


def test_old_runbook_tarball_imports_and_restores_byte_for_byte(env, tmp_path):
    src = tmp_path / "src"
    old_runbook_sources(src)
    sid = import_(env.stack, old_runbook_tarball(src, tmp_path / "out"))
    m = show(env.stack, sid)
    assert (m["kind"], m["reason"]) == ("import", f"import {TOP}.tar.gz")
    kinds = {n: (c["kind"], c["agent"]) for n, c in m["components"].items()}
    assert kinds == {"chroma": ("chroma", "local"), "redis": ("redis", "local"), "documents": ("paths", "local"),
                     "processing": ("paths", "local"), "config": ("config", "local"), "extras": ("paths", "")}
    target = tmp_path / "restored"
    env.stack.ragctl("restore", sid, "--target", str(target), "--components", "chroma,redis,documents,processing,config")
    for name, origin in (("chroma", "chroma/chroma"), ("redis", "redisdata"), ("documents", "app/documents"),
                         ("processing", "app/processing_state"), ("config", "deploy")):
        assert_same_tree(tree_state(str(src / origin)), str(target / name), f"imported {name}")
    assert (target / "chroma" / "chroma.sqlite3").is_file() and (target / "redis" / "dump.rdb").is_file()
    extras = m["components"]["extras"]
    assert extras["source"]["root"].endswith("/notes") and extras["stats"]["files"] == 1


def test_reimported_chroma_dedups_against_its_first_import(env, tmp_path):
    src = tmp_path / "src"
    old_runbook_sources(src)
    first = show(env.stack, import_(env.stack, old_runbook_tarball(src, tmp_path / "one")))
    again = show(env.stack, import_(env.stack, old_runbook_tarball(src, tmp_path / "two"), "--reason", "again"))
    assert again["reason"] == "again"
    assert first["stats"]["bytes_stored"] > 1_000_000
    assert again["stats"]["bytes_stored"] < 20_000, again["stats"]


# --------------------------------------------------------------------------- (c) hostile tarballs

def _info(name: str, typ: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.size, i.linkname, i.mode, i.mtime = typ, size, link, 0o644, 1_700_000_000
    if typ == tarfile.CHRTYPE:
        i.devmajor, i.devminor = 1, 3
    return i


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, size=len(data)), data


def _hostile(prefix: str) -> dict[str, tuple[list, str]]:
    """case -> (members, the member the refusal must name); names start with `prefix`."""
    p = prefix
    return {
        "absolute": ([_file("/etc/evil-cron")], "/etc/evil-cron"),
        "dotdot": ([_file(f"{p}../escape")], f"{p}../escape"),
        "symlink-to-etc": ([(_info(f"{p}etc", tarfile.SYMTYPE, link="/etc"), b""), _file(f"{p}etc/cron.d/evil")],
                           f"{p}etc"),
        "hardlink-outside": ([(_info(f"{p}passwd", tarfile.LNKTYPE, link="/etc/passwd"), b"")], f"{p}passwd"),
        "device": ([(_info(f"{p}null", tarfile.CHRTYPE), b"")], f"{p}null"),
        "env-backup-symlink": ([(_info(f"{p}.env.backup", tarfile.SYMTYPE, link="/etc/shadow"), b"")],
                               f"{p}.env.backup"),
    }


INNER_ONLY = {
    "symlink-escape": ([(_info("documents/up", tarfile.SYMTYPE, link="../../.."), b"")], "documents/up"),
    "through-symlink": ([(_info("documents/sub", tarfile.DIRTYPE), b""),
                         (_info("documents/lnk", tarfile.SYMTYPE, link="sub"), b""), _file("documents/lnk/x")],
                        "documents/lnk/x"),
    "hardlink-forward": ([(_info("documents/a", tarfile.LNKTYPE, link="documents/z"), b""), _file("documents/z")],
                         "documents/a"),
    "fifo": ([(_info("documents/queue", tarfile.FIFOTYPE), b"")], "documents/queue"),
}
GOOD_DOCS = [(_info("documents", tarfile.DIRTYPE), b""), _file("documents/ok.txt", b"fine\n")]
CASES = [("outer", c) for c in _hostile(f"{TOP}/")] + [("inner", c) for c in _hostile("documents/")] + \
        [("inner", c) for c in INNER_ONLY]


def hostile_tarball(where: str, case: str, path: Path) -> str:
    if where == "outer":
        members, named = _hostile(f"{TOP}/")[case]
        inner = _tar_bytes(GOOD_DOCS)
    else:
        members, named = {**_hostile("documents/"), **INNER_ONLY}[case]
        inner = _tar_bytes(GOOD_DOCS + members)
        members = []
    outer = [(_info(f"{TOP}", tarfile.DIRTYPE), b""), _file(f"{TOP}/documents.tar.gz", inner), *members]
    path.write_bytes(_tar_bytes(outer))
    return named


@pytest.mark.parametrize("where,case", CASES, ids=[f"{w}-{c}" for w, c in CASES])
def test_hostile_tarball_is_refused_naming_the_member_and_stores_nothing(env, tmp_path, where, case):
    path = tmp_path / "evil.tar.gz"
    named = hostile_tarball(where, case, path)
    before_ids, before_files = snapshot_ids(env.stack), repository_files(env.stack)
    cp = env.stack.ragctl("import", str(path), check=False)
    assert cp.returncode == errors.UnsafePath.exit_code, ragctl_output(cp)
    assert repr(named) in cp.stderr, ragctl_output(cp)
    if where == "inner":
        assert "documents.tar.gz" in cp.stderr
    assert snapshot_ids(env.stack) == before_ids
    assert repository_files(env.stack) == before_files


OUTSIDE_LINKS = [(_info("documents", tarfile.DIRTYPE), b""), _file("documents/ok.txt", b"fine\n"),
                 (_info("documents/etc", tarfile.SYMTYPE, link="/etc"), b""),
                 (_info("documents/up", tarfile.SYMTYPE, link="../shared/models"), b"")]


def test_outside_symlinks_import_only_when_allowed_and_survive_a_round_trip(env, tmp_path):
    """Symlinks to an absolute path or out of the component: refused (exit 9) with a hint; kept with
    --allow-outside-symlinks, restored as links; an export of that snapshot imports back the same."""
    path = tmp_path / f"{TOP}.tar.gz"
    path.write_bytes(_tar_bytes([(_info(TOP, tarfile.DIRTYPE), b""),
                                 _file(f"{TOP}/documents.tar.gz", _tar_bytes(OUTSIDE_LINKS))]))
    before_ids = snapshot_ids(env.stack)
    cp = env.stack.ragctl("import", str(path), check=False)
    assert cp.returncode == errors.UnsafePath.exit_code, ragctl_output(cp)
    assert "--allow-outside-symlinks" in cp.stderr and snapshot_ids(env.stack) == before_ids, ragctl_output(cp)
    sid = import_(env.stack, path, "--allow-outside-symlinks")
    target = tmp_path / "restored"
    env.stack.ragctl("restore", sid, "--target", str(target), "--components", "documents")
    assert os.readlink(target / "documents" / "etc") == "/etc"
    assert os.readlink(target / "documents" / "up") == "../shared/models"
    assert (target / "documents" / "ok.txt").read_bytes() == b"fine\n"
    out = tmp_path / "again.tar.gz"
    env.stack.ragctl("export", sid, "-o", str(out))
    cp = env.stack.ragctl("import", str(out), check=False)
    assert cp.returncode == errors.UnsafePath.exit_code, ragctl_output(cp)
    again = import_(env.stack, out, "--allow-outside-symlinks")
    assert json.loads(env.stack.ragctl("diff", sid, again, "--json").stdout) == []


def test_allowing_outside_symlinks_still_refuses_a_path_through_one(env, tmp_path):
    path = tmp_path / "evil.tar.gz"
    named = hostile_tarball("inner", "symlink-to-etc", path)
    cp = env.stack.ragctl("import", str(path), "--allow-outside-symlinks", check=False)
    assert cp.returncode == errors.UnsafePath.exit_code and repr("documents/etc/cron.d/evil") in cp.stderr, \
        ragctl_output(cp)
    assert named == "documents/etc"


def test_decompression_bomb_is_refused_before_reading_data(env, tmp_path):
    """A header claiming 2 TiB is refused as soon as it is read (the data is not even there)."""
    huge = _info("documents/huge.bin", size=2 << 40).tobuf(tarfile.PAX_FORMAT)
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w|gz") as t:
        t.fileobj.write(huge + b"\0" * 4096)
    outer = tmp_path / "bomb.tar.gz"
    outer.write_bytes(_tar_bytes([_file(f"{TOP}/documents.tar.gz", inner.getvalue())]))
    before = snapshot_ids(env.stack)
    cp = env.stack.ragctl("import", str(outer), check=False)
    assert cp.returncode == errors.UsageError.exit_code, ragctl_output(cp)
    assert "decompression bomb" in cp.stderr
    assert snapshot_ids(env.stack) == before


def test_upload_larger_than_the_staging_volume_is_refused_up_front(env):
    channel = grpc.insecure_channel(f"unix:{env.stack.socket}")
    stub = controller_pb2_grpc.ControllerStub(channel)
    chunks = iter([controller_pb2.ImportChunk(data=b"x" * 100, filename="big.tar.gz")])
    with pytest.raises(grpc.RpcError) as info:
        stub.Import(chunks, metadata=(("rag-import-size", str(1 << 60)),), timeout=60)
    channel.close()
    err = errors.translate_rpc_error(info.value, "controller")
    assert isinstance(err, errors.NoSpace), err
    assert "staging directory" in err.message and "big.tar.gz" in err.message


# --------------------------------------------------------------------------- (d) round trip

def test_export_then_import_gives_the_same_trees(env, tmp_path):
    out = tmp_path / "rt.tar.gz"
    env.stack.ragctl("export", env.sid, "-o", str(out))
    sid = import_(env.stack, out, "--reason", "round trip")
    m = show(env.stack, sid)
    assert sorted(m["components"]) == ["config", "documents", "processing"]
    assert m["source"]["snapshot_id"] == env.sid
    diff = json.loads(env.stack.ragctl("diff", env.sid, sid, "--json").stdout)
    assert diff == [], diff[:10]
    original = show(env.stack, env.sid)
    assert (m["time"], m["source"]["time_from"]) == (original["time"], "manifest.json")
    for name, c in m["components"].items():
        for key in ("files", "dirs", "symlinks", "bytes_total"):
            assert c["stats"][key] == original["components"][name]["stats"][key], (name, key)
    assert m["stats"]["bytes_stored"] < 50_000, "the data was already in the repository"


# --------------------------------------------------------------------------- (e) sparse members

SPARSE_SIZE = 10 << 30
SPARSE_AT = 3 << 30


def sparse_tarball(tmp_path: Path) -> tuple[Path, bytes]:
    """A runbook tarball whose documents.tar.gz holds a GNU sparse member of 10 GiB with 4 KiB of data."""
    src = tmp_path / "src"
    (src / "documents").mkdir(parents=True)
    data = os.urandom(4096)
    with open(src / "documents" / "disk.img", "wb") as f:
        f.truncate(SPARSE_SIZE)
        f.seek(SPARSE_AT)
        f.write(data)
    (src / TOP).mkdir()
    tar("--sparse", "-czf", str(src / TOP / "documents.tar.gz"), "documents", cwd=src)
    out = tmp_path / f"{TOP}.tar.gz"
    tar("-czf", str(out), TOP, cwd=src)
    return out, data


def test_sparse_member_past_the_expansion_limit_is_refused(env, tmp_path):
    path, _ = sparse_tarball(tmp_path)
    print(f"\ntarball of {path.stat().st_size} bytes holding a {SPARSE_SIZE}-byte sparse member")
    before_ids, before_files = snapshot_ids(env.stack), repository_files(env.stack)
    cp = env.stack.ragctl("import", str(path), check=False)
    assert cp.returncode == errors.ExpansionRefused.exit_code == 9, ragctl_output(cp)
    assert "'documents/disk.img'" in cp.stderr and "max_expansion_ratio" in cp.stderr, ragctl_output(cp)
    assert snapshot_ids(env.stack) == before_ids
    assert repository_files(env.stack) == before_files


def test_sparse_member_imports_with_its_holes_when_allowed(env, tmp_path):
    path, data = sparse_tarball(tmp_path)
    env.stack.controller_extra = "[import]\nmax_expansion_ratio = 0\n"
    env.stack.restart_controller()
    try:
        sid = import_(env.stack, path)
    finally:
        env.stack.controller_extra = ""
        env.stack.restart_controller()
    comp = show(env.stack, sid)["components"]["documents"]
    assert comp["stats"]["bytes_total"] == SPARSE_SIZE
    target = tmp_path / "restored"
    env.stack.ragctl("restore", sid, "--components", "documents", "--target", str(target))
    restored = target / "documents" / "disk.img"
    st = restored.stat()
    assert st.st_size == SPARSE_SIZE and st.st_blocks * 512 <= 1 << 20, st
    fd = os.open(restored, os.O_RDONLY)
    try:  # byte-identical: the data where it was, holes (reading zeros) everywhere else
        assert os.lseek(fd, 0, os.SEEK_DATA) == SPARSE_AT
        assert os.pread(fd, 4096, SPARSE_AT) == data
        assert os.lseek(fd, SPARSE_AT, os.SEEK_HOLE) == SPARSE_AT + 4096
        with pytest.raises(OSError):
            os.lseek(fd, SPARSE_AT + 4096, os.SEEK_DATA)
    finally:
        os.close(fd)
