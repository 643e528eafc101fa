"""Scheduled backups, the RPO warning, deploy-backup coalescing and systemd notify, through the real daemons."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
from fixtures.procs import wait_until
from fixtures.stack import MiB, write
from fixtures.syslog_sink import SyslogSink
from ragbackup.localstack import LocalStack


def _drain(sink: SyslogSink) -> list[str]:
    return sink.lines()


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    write(str(d / "a.txt"), b"alpha\n" * 100)
    return d


def _stack(tmp_path, components: dict, extra: str = "", env: dict | None = None, name: str = "stack") -> LocalStack:
    st = LocalStack(str(tmp_path / name), env=env)
    st.controller_extra = extra
    for comp, (kind, path) in components.items():
        st.add_component(comp, kind, str(path))
    return st


def _scheduled(st: LocalStack) -> dict:
    return json.loads(st.ragctl("backup", "--scheduled", "--json").stdout)


def _jobs(st: LocalStack) -> list[dict]:
    return json.loads(st.ragctl("jobs", "--json").stdout)


def test_scheduled_backup_full_then_skipped_then_incremental(tmp_path, docs, syslog, monkeypatch):
    monkeypatch.setenv("RAG_BACKUP_TRIGGER", "timer")
    with _stack(tmp_path, {"docs": ("paths", docs)}, '[schedule]\nincremental_every = "4h"\n') as st:
        st.ragctl("init")
        first = _scheduled(st)
        assert first["schedule"]["full"] == ["docs"] and len(first["snapshots"]) == 1
        assert first["snapshots"][0]["kind"] == "full"
        again = _scheduled(st)  # a second timer right after (both catching up at boot): nothing due
        assert again["snapshots"] == [] and "min_gap" in again["schedule"]["skipped"]["docs"]
        unknown = st.ragctl("backup", "--scheduled", "--components", "nope", check=False)
        assert unknown.returncode == 2 and "unknown component(s): nope" in unknown.stderr
        human = st.ragctl("backup", "--scheduled").stdout
        assert "nothing due" in human and "skipped docs" in human
        st.controller_extra = '[schedule]\nincremental_every = "4h"\nmin_gap = "0s"\n'
        st.restart_controller()
        later = _scheduled(st)
        assert later["schedule"]["incremental"] == ["docs"] and later["snapshots"][0]["kind"] == "incremental"
        jobs = [j for j in _jobs(st) if j["kind"] == "backup"]
        assert [j["trigger"] for j in jobs] == ["timer", "timer"]
        assert [j["snapshot"] for j in jobs] == [first["snapshots"][0]["id"], later["snapshots"][0]["id"]]
    audit = [line for line in _drain(syslog) if "action=schedule" in line]
    assert audit and "min_gap" in audit[0]


def test_scheduled_backup_skips_a_component_a_running_job_holds(tmp_path, docs, monkeypatch):
    big = tmp_path / "big"
    big.mkdir()
    for i in range(4):
        write(str(big / f"v{i}.bin"), os.urandom(32 * MiB))
    with _stack(tmp_path, {"docs": ("paths", docs), "big": ("paths", big)}) as st:
        st.ragctl("init")
        slow = subprocess.Popen(st.ragctl_argv("backup", "--components", "big"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        agent = st.pids()["agent"]
        decided: dict = {}
        try:
            wait_until(lambda: any(j["result"] == "running" for j in _jobs(st)), 30, "the big backup to run")
            os.kill(agent, signal.SIGSTOP)  # the big backup stays running while the timer fires
            timer = threading.Thread(target=lambda: decided.update(_scheduled(st)))
            timer.start()
            # the firing has decided once its own backup (of docs) runs beside the big one
            wait_until(lambda: sum(j["result"] == "running" for j in _jobs(st)) == 2, 60, "the scheduled backup")
        finally:
            os.kill(agent, signal.SIGCONT)
            assert slow.wait(300) == 0
        timer.join(300)
        d = decided
        running = next(j for j in _jobs(st) if j["components"] == ["big"])
        assert d["schedule"]["skipped"] == {"big": f"backup job {running['id']} is running"}
        assert d["schedule"]["full"] == ["docs"] and d["snapshots"][0]["components"].keys() == {"docs"}


def test_rpo_the_schedule_cannot_meet_is_said_at_start_in_health_and_audit(tmp_path, docs, syslog):
    with _stack(tmp_path, {"docs": ("paths", docs)}) as st:  # defaults: incrementals every 6 h, RPO 4 h
        st.ragctl("init")
        cp = st.ragctl("health", "--json", check=False)
        checks = {c["check"]: c for c in json.loads(cp.stdout)["checks"]}
        assert cp.returncode == 10 and checks["schedule vs RPO"]["ok"] is False
        assert "cannot meet the RPO of 4h" in checks["schedule vs RPO"]["detail"]
        assert "cannot meet the RPO of 4h: backups every 6h" in st.log_tail("controller", 50)
        st.controller_extra = '[schedule]\nincremental_every = "4h"\n'
        st.restart_controller()
        checks = {c["check"]: c for c in json.loads(st.ragctl("health", "--json", check=False).stdout)["checks"]}
        assert checks["schedule vs RPO"]["ok"] is True and "meet the RPO of 4h" in checks["schedule vs RPO"]["detail"]
    audit = [line for line in _drain(syslog) if "action=objectives" in line]
    assert len(audit) == 1 and "outcome=failed" in audit[0] and "RPO of 4h" in audit[0]


def test_a_burst_of_deploy_backups_makes_one_config_snapshot(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    write(str(conf / ".env"), b"OPENAI_API_KEY=sk-burst-secret-value\nDB=1\n")
    monkeypatch.setenv("RAG_BACKUP_TRIGGER", "path")
    with _stack(tmp_path, {"config": ("config", conf)}, '[schedule]\ndeploy_debounce = "2s"\n') as st:
        st.ragctl("init")
        argv = st.ragctl_argv("backup", "--components", "config", "--reason", "deploy", "--json")
        burst = []
        for i in range(3):  # a deploy touching three files, the path unit firing for each
            write(str(conf / f"docker-compose.{i}.yml"), b"services: {}\n")
            burst.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            time.sleep(0.5)
        outs = [p.communicate(timeout=120) for p in burst]
        assert [p.returncode for p in burst] == [0, 0, 0], outs
        ids = {json.loads(out)["id"] for out, _ in outs}
        assert len(ids) == 1
        (sid,) = ids
        snaps = json.loads(st.ragctl("snapshots", "--json").stdout)
        assert [(s["id"], s["kind"], s["reason"]) for s in snaps] == [(sid, "config", "deploy")]
        summary = json.loads(outs[0][0])
        assert summary["components"]["config"]["stats"]["files"] == 4  # .env and all three compose files
        jobs = _jobs(st)
        assert [(j["kind"], j["trigger"], j["snapshot"]) for j in jobs] == [("backup", "path", sid)]
        after = json.loads(st.ragctl("backup", "--components", "config", "--reason", "deploy", "--json").stdout)
        assert after["id"] != sid  # a later deploy is a new backup
        logs = st.log_tail("controller", 400) + st.log_tail("agent", 400) + "".join(o + e for o, e in outs)
        assert "sk-burst-secret-value" not in logs


class NotifySocket:
    """A bound NOTIFY_SOCKET, read continuously as systemd does, that knows which process sent each
    datagram (SO_PASSCRED)."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, int, str]] = []  # (time received, sender pid, message)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            pid = next(int.from_bytes(d[:4], "little") for _, typ, d in anc if typ == socket.SCM_CREDENTIALS)
            self.got.append((time.monotonic(), pid, data.decode()))

    def messages(self, pid: int, since: float = 0.0) -> list[str]:
        return [m for t, p, m in list(self.got) if p == pid and t >= since]

    def wait(self, pid: int, text: str, timeout: float = 60) -> str:
        """The first message from `pid` holding `text`."""
        wait_until(lambda: any(text in m for m in self.messages(pid)), timeout, f"{text!r} from pid {pid}")
        return next(m for m in self.messages(pid) if text in m)

    def close(self) -> None:
        self._stop.set()
        self._reader.join(5)
        self.sock.close()


def test_ready_status_and_watchdog_reach_systemd(tmp_path, docs):
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    env = {"NOTIFY_SOCKET": notify.sock.getsockname(), "WATCHDOG_USEC": "900000"}  # pings at least every 0.6 s
    try:
        st = _stack(tmp_path, {"docs": ("paths", docs)}, env=env)
        with st:
            ctl, agent = st.procs["controller"].pid, st.procs["agent"].pid
            notify.wait(ctl, "WATCHDOG=1")
            notify.wait(agent, "WATCHDOG=1")
            assert notify.messages(ctl)[0] == f"READY=1\nSTATUS=serving on {st.socket}; idle"  # before any ping
            assert notify.messages(agent)[0].startswith("READY=1\nSTATUS=listening on port")
            st.ragctl("init")
            st.ragctl("backup")
            notify.wait(ctl, "idle; last backup job 1 success")
            assert any("STATUS=serving on" in m and "running backup job 1 (manual)" in m for m in notify.messages(ctl))
            os.kill(ctl, signal.SIGSTOP)  # a hung controller earns no pings
            try:
                time.sleep(0.3)
                stopped = time.monotonic()
                time.sleep(1.5)
                assert [m for m in notify.messages(ctl, stopped) if "WATCHDOG" in m] == []
            finally:
                os.kill(ctl, signal.SIGCONT)
            resumed = time.monotonic()
            wait_until(lambda: "WATCHDOG=1" in notify.messages(ctl, resumed), 30, "pings after SIGCONT")
    finally:
        notify.close()
