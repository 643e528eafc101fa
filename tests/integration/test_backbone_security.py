"""Acceptance tests of the backbone's defences: unsafe restore paths and mTLS on the agent.

In: one LocalStack per module (agent and controller processes), gRPC channels opened by the
test with certificates from the stack's CA, another CA, or none. Out: unsafe Restore streams
refused with INVALID_ARGUMENT and nothing written outside the target; only clients holding a
certificate from the configured CA reach the agent; a snapshot whose tree names an unsafe
path is refused by `ragctl restore` (exit 9); the path rules themselves, table-tested.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import grpc
import pytest
from ragbackup import errors, pki, wire
from ragbackup.repo import tree
from ragbackup.repo.crypto import Unlocker, chunk_id
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import Entry, check_entry, check_relative_path, encode_lines
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import LocalStorage
from ragbackup.v1 import agent_pb2, agent_pb2_grpc, common_pb2

from fixtures.stack import backup, listing, ragctl_output, running_stack, show

ID_KEY = bytes(range(32))
FILE, DIR = common_pb2.ENTRY_TYPE_FILE, common_pb2.ENTRY_TYPE_DIR
SYMLINK, HARDLINK = common_pb2.ENTRY_TYPE_SYMLINK, common_pb2.ENTRY_TYPE_HARDLINK


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("security")
    data = base / "data"
    data.mkdir()
    (data / "doc.txt").write_text("a document\n")
    with running_stack(str(base / "stack"), {"data": str(data)}) as st:
        yield st


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def agent_channel(stack, cert_dir: str | None, name: str = "", trust: str | None = None) -> grpc.Channel:
    """A TLS channel to the stack's agent presenting `cert_dir/name.pem` (no client cert if None)."""
    ca = _read(trust or os.path.join(stack.pki_dir, "ca.pem"))
    if cert_dir is None:
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=_read(os.path.join(cert_dir, f"{name}-key.pem")),
            certificate_chain=_read(os.path.join(cert_dir, f"{name}.pem")))
    return grpc.secure_channel(f"127.0.0.1:{stack.agent_port}", creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


@pytest.fixture(scope="module")
def tester_certs(stack) -> str:
    """A client certificate issued by the stack's own CA (as a second controller would hold)."""
    pki.issue(stack.pki_dir, "tester", ["localhost"])
    return stack.pki_dir


# --------------------------------------------------------------------------- 7a. malicious Restore streams

def chunk(data: bytes) -> common_pb2.Chunk:
    return common_pb2.Chunk(id=chunk_id(ID_KEY, data), payload=data, compressed=False, raw_size=len(data))


def entry(path: bytes, kind: int, target: bytes = b"", data: bytes | None = None) -> common_pb2.Entry:
    e = common_pb2.Entry(path=path, type=kind, mode=0o644 if kind != DIR else 0o755, target=target,
                         uid=os.getuid(), gid=os.getgid(), mtime_ns=1_600_000_000_000_000_000)
    if data is not None:
        e.chunks.append(chunk_id(ID_KEY, data))
        e.size = len(data)
    return e


def restore_stream(target: str, entries: list[common_pb2.Entry]):
    yield agent_pb2.RestoreCommand(start=agent_pb2.RestoreStart(
        component=common_pb2.ComponentSpec(name="evil", kind="paths", path=""), target=target,
        id_key=ID_KEY, snapshot_id="rag-system-backup-20250101_000000"))
    yield agent_pb2.RestoreCommand(entries=common_pb2.EntryBatch(entries=entries))
    chunks = [chunk(b"pwned\n") for e in entries if e.chunks]
    if chunks:
        yield agent_pb2.RestoreCommand(chunks=common_pb2.ChunkBatch(chunks=chunks))
    yield agent_pb2.RestoreCommand(finish=agent_pb2.RestoreFinish())


def unsafe_cases(outside: bytes) -> dict[str, list[common_pb2.Entry]]:
    """Each is a Restore stream that would write (or link) outside the target if obeyed.

    Layout: CASE/target (the --target), CASE/outside; the agent writes into
    CASE/target/.evil.restoring.STAMP first, so `../../outside` reaches CASE/outside."""
    evil = b"pwned\n"
    return {
        "absolute path": [entry(outside + b"/evil", FILE, data=evil)],
        "dotdot path": [entry(b"../../outside/evil", FILE, data=evil)],
        "dotdot inside a path": [entry(b"sub", DIR), entry(b"sub/../../../outside/evil", FILE, data=evil)],
        "file through symlink (absolute)": [entry(b"link", SYMLINK, target=outside),
                                            entry(b"link/evil", FILE, data=evil)],
        "file through symlink (relative)": [entry(b"up", SYMLINK, target=b"../../outside"),
                                            entry(b"up/evil", FILE, data=evil)],
        "dir through symlink": [entry(b"link", SYMLINK, target=outside), entry(b"link/newdir", DIR)],
        "file through nested symlink": [entry(b"d", DIR), entry(b"d/l", SYMLINK, target=outside),
                                        entry(b"d/l/evil", FILE, data=evil)],
        "symlink through symlink": [entry(b"link", SYMLINK, target=outside),
                                    entry(b"link/evil", SYMLINK, target=b"/etc/passwd")],
        "file over a symlink": [entry(b"f", SYMLINK, target=outside + b"/evil"), entry(b"f", FILE, data=evil)],
        "hardlink to outside via symlink": [entry(b"link", SYMLINK, target=outside),
                                            entry(b"stolen", HARDLINK, target=b"link/secret")],
        "hardlink with absolute target": [entry(b"stolen", HARDLINK, target=outside + b"/secret")],
        "hardlink with dotdot target": [entry(b"stolen", HARDLINK, target=b"../../outside/secret")],
        "unknown entry type": [entry(b"dev", 9)],
    }


CASES = list(unsafe_cases(b"/x"))


@pytest.mark.parametrize("case", CASES)
def test_agent_refuses_unsafe_restore_streams(stack, tester_certs, tmp_path, case):
    target, outside = tmp_path / "target", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"outside data\n")
    before = listing(str(outside))
    entries = unsafe_cases(os.fsencode(outside))[case]
    with agent_channel(stack, tester_certs, "tester") as ch:
        with pytest.raises(grpc.RpcError) as info:
            agent_pb2_grpc.AgentStub(ch).Restore(restore_stream(str(target), entries), timeout=30)
    err = info.value
    print(f"\n{case}: {err.code().name}: {err.details()}")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert "refused" in err.details(), err.details()
    assert dict(err.trailing_metadata()).get(errors.ERROR_KIND_KEY) == "UnsafePath"
    assert listing(str(outside)) == before, f"{case}: something was written outside the target"
    assert os.stat(outside / "secret").st_nlink == 1, f"{case}: a hardlink to an outside file was made"
    assert os.listdir(target) == [], f"{case}: the partial restore was left behind: {os.listdir(target)}"


def test_agent_restores_a_benign_stream(stack, tester_certs, tmp_path):
    """The control for the refusals: the same harness with safe entries succeeds."""
    target = tmp_path / "target"
    entries = [entry(b"ok", DIR), entry(b"ok/f", FILE, data=b"pwned\n"),
               entry(b"ok/abs-link", SYMLINK, target=b"/etc/passwd"), entry(b"ok/h", HARDLINK, target=b"ok/f"),
               entry(b"..dots..", FILE)]
    with agent_channel(stack, tester_certs, "tester") as ch:
        res = agent_pb2_grpc.AgentStub(ch).Restore(restore_stream(str(target), entries), timeout=30)
    assert res.restored_path == str(target / "evil")
    assert (target / "evil" / "ok" / "f").read_bytes() == b"pwned\n"
    assert os.readlink(target / "evil" / "ok" / "abs-link") == "/etc/passwd"
    assert os.stat(target / "evil" / "ok" / "h").st_ino == os.stat(target / "evil" / "ok" / "f").st_ino
    assert (target / "evil" / "..dots..").read_bytes() == b""


@pytest.mark.parametrize("size", [5, 7, 8 * 1024 * 1024])
def test_agent_refuses_a_file_whose_size_does_not_match_its_chunks(stack, tester_certs, tmp_path, size):
    """A claimed size (small, or large enough to preallocate) must equal the chunks' bytes."""
    target = tmp_path / "target"
    e = entry(b"f", FILE, data=b"pwned\n")
    e.size = size
    with agent_channel(stack, tester_certs, "tester") as ch:
        with pytest.raises(grpc.RpcError) as info:
            agent_pb2_grpc.AgentStub(ch).Restore(restore_stream(str(target), [e]), timeout=30)
    assert dict(info.value.trailing_metadata()).get(errors.ERROR_KIND_KEY) == "IntegrityError"
    assert "the snapshot says" in info.value.details(), info.value.details()
    assert not target.exists() or os.listdir(target) == []


# --------------------------------------------------------------------------- 7b. path rules and manifests

@pytest.mark.parametrize("path", [b"a", b"a/b/c", "ü nï/文 件".encode(), b"..a", b"a..", b"...", b".hidden",
                                  b"new\nline", b"\xe9\xff", b"a\\..\\b"])
def test_check_relative_path_accepts(path):
    assert check_relative_path(path) == path.split(b"/")


@pytest.mark.parametrize("path", [b"", b"/", b"/etc/passwd", b"..", b".", b"../a", b"a/..", b"a/../b",
                                  b"a/./b", b"./a", b"a//b", b"a/", b"a\0b", b"//a"])
def test_check_relative_path_refuses(path):
    with pytest.raises(errors.UnsafePath) as info:
        check_relative_path(path)
    assert "refused" in info.value.message
    assert info.value.exit_code == 9 and info.value.grpc_status == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("e", [
    Entry(b"../x", tree.FILE), Entry(b"/x", tree.DIR), Entry(b"ok", "fifo"),
    Entry(b"h", tree.HARDLINK, target=b"../outside"), Entry(b"h", tree.HARDLINK, target=b"/etc/shadow"),
    Entry(b"h", tree.HARDLINK, target=b""),
], ids=["dotdot", "absolute", "unknown type", "hardlink dotdot", "hardlink absolute", "hardlink empty"])
def test_check_entry_refuses(e):
    with pytest.raises(errors.UnsafePath):
        check_entry(e)


@pytest.mark.parametrize("e", [
    Entry(b"a/b", tree.FILE), Entry(b"d", tree.DIR), Entry(b"l", tree.SYMLINK, target=b"/etc/passwd"),
    Entry(b"l", tree.SYMLINK, target=b"../../anywhere"), Entry(b"h", tree.HARDLINK, target=b"a/b"),
], ids=["file", "dir", "absolute symlink target", "dotdot symlink target", "hardlink"])
def test_check_entry_accepts(e):
    check_entry(e)


def test_restore_of_a_snapshot_naming_an_unsafe_path_is_refused(stack, tmp_path):
    """A manifest planted in the repository (valid key, so it authenticates) whose tree holds
    `../escape`: the controller refuses it before the agent writes anything (exit 9)."""
    sid = backup(stack)["id"]
    with open(stack.passphrase_file, "rb") as f:
        repo = Repository.open(LocalStorage(stack.repo_dir), Unlocker("passphrase", f.read().strip()),
                               str(tmp_path / "cache"))
    try:
        repo.sync_index()
        lines = tmp_path / "tree.jsonl"
        lines.write_bytes(b"".join(encode_lines([
            Entry(b"fine", tree.DIR, mode=0o755), Entry(b"fine/../../../escape", tree.FILE, mode=0o644)])))
        writer = BlobWriter(repo, str(tmp_path / "staging"))
        tree_ids = writer.add_tree(str(lines))
        writer.commit()
        manifest = repo.load_snapshot(sid)
        evil_id = sid[:-6] + "000000" if sid[-6:] != "000000" else sid[:-6] + "000001"
        manifest["id"] = evil_id
        manifest["components"]["data"]["tree"] = [t.hex() for t in tree_ids]
        repo.save_snapshot(manifest)
    finally:
        repo.close()
    assert show(stack, evil_id)["id"] == evil_id
    target = tmp_path / "deep" / "er" / "target"
    target.mkdir(parents=True)
    cp = stack.ragctl("restore", evil_id, "--target", str(target), check=False)
    assert cp.returncode == 9, ragctl_output(cp)
    assert "refused" in cp.stderr and "escape" in cp.stderr, ragctl_output(cp)
    assert list(tmp_path.rglob("escape")) == [], "the unsafe entry was written"
    assert os.listdir(target) == [], os.listdir(target)
    shutil.rmtree(target)


# --------------------------------------------------------------------------- 9. mTLS on the agent

def health(ch: grpc.Channel) -> agent_pb2.HealthReply:
    return agent_pb2_grpc.AgentStub(ch).Health(agent_pb2.HealthRequest(), timeout=5)


def test_plain_channel_cannot_call_the_agent(stack):
    with grpc.insecure_channel(f"127.0.0.1:{stack.agent_port}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            health(ch)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value


def test_tls_client_without_certificate_is_refused(stack):
    with agent_channel(stack, None) as ch:
        with pytest.raises(grpc.RpcError) as info:
            health(ch)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value


def test_client_certificate_from_another_ca_is_refused(stack, tmp_path):
    rogue = str(tmp_path / "rogue-pki")
    pki.create_ca(rogue)
    pki.issue(rogue, "controller", ["localhost", "127.0.0.1"])  # same name as the real one
    with agent_channel(stack, rogue, "controller") as ch:
        with pytest.raises(grpc.RpcError) as info:
            health(ch)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    # and a client that trusts only the rogue CA will not accept the agent either
    with agent_channel(stack, rogue, "controller", trust=os.path.join(rogue, "ca.pem")) as ch:
        with pytest.raises(grpc.RpcError) as info:
            health(ch)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value


def test_client_certificate_from_the_configured_ca_is_accepted(stack, tester_certs):
    with agent_channel(stack, tester_certs, "tester") as ch:
        reply = health(ch)
    assert reply.version and reply.uptime_s > 0
    assert wire.RESTORE_CHUNK_IDS in reply.features  # a controller sends this agent chunk ids joined
    assert wire.ENTRY_PARTS in reply.features  # and an entry of many chunk ids in parts


# --------------------------------------------------------------------------- 10. agent on a unix socket

CONNECT = "import socket, sys; s = socket.socket(socket.AF_UNIX); sys.exit(s.connect_ex(sys.argv[1]))"


def test_agent_on_its_unix_socket_round_trips_and_admits_owner_and_group_only(make_stack, tmp_path):
    """The single-host deployment: no TLS, the socket's 0660 permissions are the authentication."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "a.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (data / "b.txt").write_text("b" * 100_000)
    st = make_stack({"data": str(data)}, agent_socket=True)
    assert "[tls]" not in open(st.agent_config).read() and "[tls]" not in open(st.controller_config).read()
    sid = backup(st)["id"]
    st.ragctl("restore", sid, "--target", str(tmp_path / "out"))
    for rel in ("sub/a.bin", "b.txt"):
        assert _read(str(data / rel)) == _read(str(tmp_path / "out" / "data" / rel)), rel
    assert os.stat(st.agent_socket).st_mode & 0o777 == 0o660
    if os.geteuid() == 0:  # another user, in neither the owner's nor rag-backup's group, is refused
        cp = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             sys.executable, "-c", CONNECT, st.agent_socket], capture_output=True)
        assert cp.returncode == 13, cp  # EACCES
    st.stop_process("agent")
    down = st.ragctl("backup", check=False)
    assert down.returncode == 7 and "no connection on the socket" in down.stderr, ragctl_output(down)
