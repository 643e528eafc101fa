"""The audit entry's fields, the journal/syslog transports, and the relay that names callers from the kernel.

In: bound datagram sockets standing in for journald and /dev/log, a real gRPC server on the
relay's private socket, and a child process that drops to `nobody`. Out: what each received.
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from concurrent import futures

import grpc
import pytest
from ragbackup import journal
from ragbackup.controller import peercred
from ragbackup.controller.audit import MESSAGE_IDS, Audit, Caller, entry


def _parse_native(data: bytes) -> dict[str, str]:
    out, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            out[k.decode()] = v.decode()
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            out[line.decode()] = data[nl + 9:nl + 9 + n].decode()
            i = nl + 9 + n + 1
    return out


@pytest.fixture
def dgram(tmp_path):
    path = str(tmp_path / "sink.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    yield path, s
    s.close()


def test_restore_entry_is_recovery_with_message_id_and_caller_fields():
    who = Caller("unix", uid=0, gid=0, pid=42, loginuid=1000, claimed="mallory")
    e = entry("restore", who, "ok", kind="restore", job=7, trigger="manual", snapshot="abc", components="redis", bytes=10)
    assert e["SYSLOG_IDENTIFIER"] == "rag-recovery" and e["MESSAGE_ID"] == MESSAGE_IDS["job-end"]
    assert (e["RAG_JOB"], e["RAG_SNAPSHOT"], e["RAG_COMPONENTS"], e["RAG_BYTES"]) == (7, "abc", "redis", 10)
    assert (e["RAG_CALLER_UID"], e["RAG_CALLER_PID"], e["RAG_CALLER_LOGINUID"]) == (0, 42, 1000)
    assert e["RAG_CALLER_USER"] == "root" and e["RAG_CALLER_CLAIMED"] == "mallory"
    assert "user=root" in e["MESSAGE"] and "mallory" not in e["MESSAGE"]


def test_each_event_type_has_its_own_message_id():
    assert len(set(MESSAGE_IDS.values())) == len(MESSAGE_IDS)
    assert all(len(m) == 32 and int(m, 16) >= 0 for m in MESSAGE_IDS.values())
    assert entry("job-start", "x", "started", kind="backup")["MESSAGE_ID"] == MESSAGE_IDS["job-start"]
    assert entry("init", "x", "ok")["MESSAGE_ID"] == MESSAGE_IDS["key"]
    assert entry("refused", "x", "refused")["MESSAGE_ID"] == MESSAGE_IDS["refused"]
    assert entry("backup", "x", "ok", kind="backup")["MESSAGE_ID"] == MESSAGE_IDS["job-end"]
    assert entry("forget-key", "x", "ok")["MESSAGE_ID"] == MESSAGE_IDS["operation"]  # not a job: names no kind


def test_native_protocol_round_trip_with_a_multiline_value(dgram, monkeypatch):
    path, sink = dgram
    monkeypatch.delenv(journal.SYSLOG_ENV, raising=False)
    monkeypatch.setenv(journal.JOURNAL_ENV, path)
    fields = {"MESSAGE": "two\nlines", "MESSAGE_ID": MESSAGE_IDS["job-end"], "RAG_JOB": 3}
    assert journal.send(fields) == "journal"
    assert _parse_native(sink.recv(65536)) == {"MESSAGE": "two\nlines", "MESSAGE_ID": MESSAGE_IDS["job-end"],
                                                "RAG_JOB": "3"}


def test_syslog_fallback_when_there_is_no_journal(dgram, monkeypatch, tmp_path):
    path, sink = dgram
    monkeypatch.setenv(journal.JOURNAL_ENV, str(tmp_path / "no-journal.sock"))
    monkeypatch.setenv(journal.SYSLOG_ENV, path)
    Audit().record("backup", Caller("unix", uid=0, gid=0, pid=1), "ok", kind="backup", job=1, snapshot="s1")
    line = sink.recv(65536).decode()
    assert line.startswith("<85>rag-backup: action=backup user=root outcome=ok caller_uid=0 caller_pid=1")
    assert "snapshot=s1" in line


def test_field_names_are_journal_safe():
    assert journal.field_name("dry-run") == "DRY_RUN" and journal.field_name("_uid") == "UID"
    with pytest.raises(ValueError):
        journal.encode({"_UID": 1})


class _Peer(grpc.GenericRpcHandler):
    """A gRPC method answering with the Caller parse_peer makes of context.peer()."""

    def service(self, details):
        def who(request, context):
            return str(peercred.parse_peer(context.peer(), "claimed")).encode()
        return grpc.unary_unary_rpc_method_handler(who)


@pytest.fixture
def relay(dgram):
    top = tempfile.mkdtemp(prefix="rag-relay-")  # tmp_path's parents are 0700: `nobody` could not reach it
    os.chmod(top, 0o755)
    public = os.path.join(top, "run", "controller.sock")
    private = peercred.private_path(public)
    peercred.prepare_private(private)
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[_Peer()])
    server.add_insecure_port(f"unix:{private}")
    server.start()
    r = peercred.Relay(public, private, "root", Audit(dgram[0]))
    r.start()
    yield r
    r.stop()
    server.stop(None)
    shutil.rmtree(top)


def test_relay_names_the_caller_from_the_kernel(relay):
    assert oct(os.stat(os.path.dirname(relay.private)).st_mode & 0o777) == "0o700"
    assert oct(os.stat(relay.public).st_mode & 0o777) == "0o660"
    with grpc.insecure_channel(f"unix:{relay.public}") as ch:
        said = ch.unary_unary("/x/Who")(b"", timeout=10, metadata=(("rag-user", "mallory"),)).decode()
    assert said == f"root(uid={os.getuid()},pid={os.getpid()})"


_CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
try:
    s.sendall(b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n")
    print("closed" if s.recv(100) == b"" else "answered")
except (BrokenPipeError, ConnectionResetError):
    print("closed")
"""


def test_a_caller_outside_the_group_is_refused_and_audited(relay, dgram):
    os.chmod(relay.public, 0o666)  # the file mode was loosened: the relay still refuses
    proc = subprocess.run([sys.executable, "-c", _CONNECT, relay.public], user=65534, group=65534, extra_groups=[],
                          capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "closed", proc.stderr
    line = dgram[1].recv(65536).decode()
    assert "rag-backup: action=refused user=nobody outcome=refused caller_uid=65534" in line
    assert "reason=\"not in group root\"" in line


def test_parse_peer_trusts_only_the_relay_address():
    assert peercred.parse_peer("unix:", "root").uid == -1
    assert str(peercred.parse_peer("unix:", "root")) == "root@unknown(unverified)"
    assert peercred.parse_peer("unix-abstract:rag-backup-peer/5/6/7/-1/ab").pid == 7
    assert peercred.parse_peer("unix-abstract:rag-backup-peer/x/6/7/-1/ab").transport == "unknown"
    assert peercred.parse_peer("ipv4:127.0.0.1:5").transport == "tcp"


def test_ragctl_refused_by_the_socket_mode_says_so_and_audits_it(dgram):
    top = tempfile.mkdtemp(prefix="rag-refused-")
    os.chmod(top, 0o755)
    sock = os.path.join(top, "controller.sock")
    lst = socket.socket(socket.AF_UNIX)
    lst.bind(sock)
    lst.listen(1)
    os.chmod(sock, 0o660)  # root:root: nobody may not connect
    log = os.path.join(top, "log.sock")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(log)
    sink.settimeout(5)
    os.chmod(log, 0o666)
    try:
        env = {**os.environ, journal.SYSLOG_ENV: log, "HOME": top}
        proc = subprocess.run([sys.executable, "-m", "ragbackup.cli.main", "--socket", sock, "jobs"], env=env,
                              user=65534, group=65534, extra_groups=[], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 7 and "permission denied" in proc.stderr, proc.stderr
        line = sink.recv(65536).decode()
        assert "rag-backup: action=refused user=nobody outcome=refused caller_uid=65534" in line
        assert 'reason="socket permission denied"' in line and line.endswith(" jobs\"")
    finally:
        lst.close()
        sink.close()
        shutil.rmtree(top)


class _Who(grpc.GenericRpcHandler):
    """A gRPC method answering with what the servicer's `caller` makes of the call."""

    def service(self, details):
        from ragbackup.controller.servicer import caller
        return grpc.unary_unary_rpc_method_handler(lambda request, context: str(caller(context)).encode())


def test_an_mtls_caller_is_named_by_its_certificate(tmp_path):
    from ragbackup import pki, tls
    from ragbackup.config import TlsConfig
    d = str(tmp_path / "pki")
    pki.create_ca(d)
    pki.issue(d, "controller", ["localhost", "127.0.0.1"])
    pki.issue(d, "ops-laptop", ["localhost"])
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[_Who()])
    port = server.add_secure_port("127.0.0.1:0", tls.server_credentials(
        TlsConfig(ca=f"{d}/ca.pem", cert=f"{d}/controller.pem", key=f"{d}/controller-key.pem")))
    server.start()
    try:
        client = TlsConfig(ca=f"{d}/ca.pem", cert=f"{d}/ops-laptop.pem", key=f"{d}/ops-laptop-key.pem")
        with tls.open_channel(f"127.0.0.1:{port}", client, server_name="localhost") as ch:
            said = ch.unary_unary("/x/Who")(b"", timeout=10, metadata=(("rag-user", "root"),)).decode()
    finally:
        server.stop(None)
    assert said == "cert:ops-laptop"


def test_the_controllers_own_entries_name_it():
    from ragbackup.controller.audit import INTERNAL
    e = entry("daemon-start", INTERNAL, "ok", config="/etc/rag-backup/controller.toml")
    assert e["MESSAGE_ID"] == MESSAGE_IDS["daemon-start"] and e["RAG_CALLER_TRANSPORT"] == "internal"
    assert e["RAG_CALLER_USER"] == "rag-backup-controller" and "RAG_CALLER_UID" not in e


def test_a_log_daemon_that_stopped_reading_delays_but_never_hangs_the_sender(dgram, monkeypatch, tmp_path):
    """A full datagram queue (net.unix.max_dgram_qlen) blocks sendto: each entry gives up after the timeout."""
    path, sink = dgram
    monkeypatch.setenv(journal.JOURNAL_ENV, str(tmp_path / "no-journal.sock"))
    monkeypatch.setenv(journal.SYSLOG_ENV, path)
    monkeypatch.setattr(journal, "SEND_TIMEOUT_S", 0.2)
    results = [journal.send({"MESSAGE": f"entry {i}", "SYSLOG_IDENTIFIER": "rag-backup"}) for i in range(int(open("/proc/sys/net/unix/max_dgram_qlen").read()) + 5)]
    assert results[0] == "syslog" and "" in results  # the queue filled: later entries were given up, not waited on
    assert sink.recv(65536).decode().endswith("entry 0")
