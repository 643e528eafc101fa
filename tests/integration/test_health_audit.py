"""`ragctl health` and the audit trail, through the real daemons, a real redis-server and a syslog socket."""
import json
import os
import pwd

import pytest
from fixtures.syslog_sink import SyslogSink
from ragbackup.localstack import LocalStack


def _lines(sink: SyslogSink) -> list[str]:
    return sink.lines()


@pytest.fixture
def stack(tmp_path, redis_server, syslog):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("hello")
    st = LocalStack(str(tmp_path / "stack"))
    st.controller_extra = '[schedule]\nincremental_every = "4h"\n'  # meets the default 4 h RPO
    st.add_paths_component("documents", str(docs))
    st.add_component("redis", "redis", redis_server.data_dir, port=redis_server.port)
    with st:
        yield st


def test_health_reports_each_check_and_fails_when_a_service_is_down(stack, redis_server):
    stack.ragctl("init")
    cp = stack.ragctl("health", "--json", check=False)
    report = json.loads(cp.stdout)
    checks = {c["check"]: c for c in report["checks"]}
    assert cp.returncode == 10 and checks["newest backup"]["ok"] is False  # no backup yet
    assert checks["agent local"]["ok"] and checks["component redis"]["ok"] and checks["component documents"]["ok"]
    stack.ragctl("backup")
    cp = stack.ragctl("health", "--json", check=False)
    failing = [c["check"] for c in json.loads(cp.stdout)["checks"] if not c["ok"]]
    # The backup volume's free-space check depends on this host's disk: alone it may fail.
    assert failing in ([], ["backup volume"]), cp.stdout
    assert cp.returncode == (0 if not failing else 10)
    redis_server.stop()
    cp = stack.ragctl("health", "--json", check=False)
    checks = {c["check"]: c for c in json.loads(cp.stdout)["checks"]}
    assert cp.returncode == 10
    assert not checks["component redis"]["ok"] and str(redis_server.port) in checks["component redis"]["detail"]
    assert checks["component documents"]["ok"]


def test_agent_down_is_named(stack):
    stack.ragctl("init")
    stack.stop_process("agent")
    cp = stack.ragctl("health", "--json", check=False)
    checks = {c["check"]: c for c in json.loads(cp.stdout)["checks"]}
    assert cp.returncode == 10 and not checks["agent local"]["ok"]
    assert "unreachable" in checks["agent local"]["detail"]


def test_audit_lines_for_backup_restore_and_failures(stack, syslog, tmp_path, monkeypatch):
    monkeypatch.setenv("LOGNAME", "mallory")  # what ragctl reports as its user: the audit must not believe it
    monkeypatch.setenv("USER", "mallory")
    stack.ragctl("init")
    sid = json.loads(stack.ragctl("backup", "--json", "--reason", "deploy").stdout)["id"]
    stack.ragctl("restore", sid, "--components", "documents", "--target", str(tmp_path / "r"))
    stack.ragctl("restore", "nope", check=False)
    lines = _lines(syslog)
    backup = [line for line in lines if "rag-backup: action=backup" in line]
    restore = [line for line in lines if "rag-recovery: action=restore" in line]
    assert backup and f"snapshot={sid}" in backup[0] and "reason=deploy" in backup[0] and "outcome=ok" in backup[0]
    assert any("outcome=ok" in r and f"snapshot={sid}" in r for r in restore)
    assert any("outcome=failed" in r and "error=NotFound" in r for r in restore)
    # the caller is named from the kernel (SO_PEERCRED through the relay), not from what ragctl says
    me = f"user={pwd.getpwuid(os.getuid()).pw_name} outcome="
    assert not any("mallory" in line for line in lines)
    assert all(me in line and f"caller_uid={os.getuid()} caller_pid=" in line for line in backup + restore), backup + restore
    assert any("rag-backup: action=init" in line for line in lines)
    assert any("rag-backup: action=daemon-start" in line for line in lines)
