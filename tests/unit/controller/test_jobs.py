"""The job runner and its records: outcome, times from the given clock, counters, audit
lines at start and end, progress while running, and interrupted jobs after a restart.

In: a Runner over a JobRecords file in tmp_path, a FakeClock and a syslog socket bound
in tmp_path. Out: the records and audit lines each job leaves.
"""
from __future__ import annotations

import datetime as _dt
import socket
import sqlite3
from types import SimpleNamespace

import pytest
from ragbackup import errors
from ragbackup.clock import FakeClock

from ragbackup.controller.audit import Audit
from ragbackup.controller.jobs import Job, JobRecords, Runner
from ragbackup.controller.jobs.records import JobRecord

T0 = _dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc)


@pytest.fixture
def syslog(tmp_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "log"))
    s.setblocking(False)
    yield s
    s.close()


def _lines(sock) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(65536).decode())
        except BlockingIOError:
            return out


@pytest.fixture
def runner(tmp_path, syslog):
    ctl = SimpleNamespace(state_dir=str(tmp_path), catalog_path=str(tmp_path / "catalog.sqlite"))
    r = Runner(ctl, JobRecords(ctl.catalog_path), Audit(str(tmp_path / "log")), FakeClock(T0))
    yield r
    r.close()


def _body(ctx):
    yield ctx.log("working")
    ctx.clock.advance(90)
    yield ctx.progress("capture", 10, 100)
    ctx.note(snapshot="rag-system-backup-20260102_030405", components=["docs"])
    ctx.count(bytes_read=100, bytes_sent=40, bytes_added=30, files=3)
    yield ctx.result("done", {"ok": True})


def test_success_is_recorded_with_the_clock_times_and_counters(runner, syslog):
    job = Job("backup", trigger="timer", caller="alice@unix:", components=("docs",), audit={"reason": "nightly"})
    events = list(runner.stream(job, _body))
    assert [e.WhichOneof("kind") for e in events] == ["log", "progress", "result"]
    rec = runner.records.list()[-1]
    assert rec == JobRecord(id=rec.id, kind="backup", trigger="timer", caller="alice@unix:", components=("docs",),
                            snapshot="rag-system-backup-20260102_030405", started="2026-01-02T03:04:05Z",
                            finished="2026-01-02T03:05:35Z", result="success", bytes_read=100, bytes_sent=40,
                            bytes_added=30, files=3, summary="done")
    start, end = _lines(syslog)
    assert "action=job-start" in start and "kind=backup" in start and "outcome=started" in start
    assert f"job={rec.id}" in start and "trigger=timer" in start
    assert "rag-backup: action=backup user=alice@unix: outcome=ok reason=nightly" in end
    assert "snapshot=rag-system-backup-20260102_030405" in end


def test_failure_keeps_the_error_class_and_message(runner, syslog):
    def body(ctx):
        yield ctx.log("connecting")
        raise errors.AgentUnavailable("agent local is unreachable")

    with pytest.raises(errors.AgentUnavailable):
        list(runner.stream(Job("restore", caller="bob@unix:"), body))
    rec = runner.records.list()[-1]
    assert (rec.result, rec.error_class, rec.error_message) == ("failure", "AgentUnavailable",
                                                                "agent local is unreachable")
    assert rec.finished == rec.started
    end = _lines(syslog)[-1]
    assert "rag-recovery: action=restore" in end and "outcome=failed" in end and "error=AgentUnavailable" in end


def test_cancellation_and_a_caller_gone_are_cancelled(runner):
    def cancelled(ctx):
        ctx.cancel.set()
        ctx.check_cancel()
        yield ctx.log("unreachable")

    with pytest.raises(errors.Cancelled):
        list(runner.stream(Job("verify"), cancelled))
    stream = runner.stream(Job("export"), _body)
    next(stream)
    stream.close()  # what gRPC does when ragctl goes away
    assert [(r.kind, r.result) for r in runner.records.list()] == [("verify", "cancelled"), ("export", "cancelled")]


def test_progress_is_visible_while_the_job_runs(runner):
    stream = runner.stream(Job("backup"), _body)
    next(stream)
    job_id = runner.records.list()[-1].id
    assert runner.records.get(job_id).result == "running"
    next(stream)
    assert runner.running(job_id).latest.done == 10
    list(stream)
    assert runner.running(job_id) is None


def test_unary_jobs_return_their_value(runner):
    def body(ctx):
        ctx.count(bytes_sent=5)
        return 42

    assert runner.call(Job("import", trigger="api"), body) == 42
    rec = runner.records.list()[-1]
    assert (rec.kind, rec.trigger, rec.result, rec.bytes_sent) == ("import", "api", "success", 5)


def test_jobs_left_running_are_interrupted_at_the_next_start(tmp_path, runner):
    stream = runner.stream(Job("backup"), _body)
    next(stream)  # running, then the controller "dies": the record stays `running`
    later = Runner(runner.ctl, JobRecords(runner.ctl.catalog_path), runner.audit, FakeClock(T0 + _dt.timedelta(hours=1)))
    assert later.recover() == [runner.records.list()[-1].id]
    rec = later.records.list()[-1]
    assert (rec.result, rec.finished, rec.error_class) == ("interrupted", "2026-01-02T04:04:05Z", "Interrupted")
    assert later.recover() == []
    later.close()


def test_list_by_kind_and_limit_and_unknown_kinds(runner):
    for kind in ("backup", "verify", "backup", "restore"):
        list(runner.stream(Job(kind), _body))
    assert [r.kind for r in runner.records.list()] == ["backup", "verify", "backup", "restore"]
    assert [r.kind for r in runner.records.list(limit=2)] == ["backup", "restore"]
    assert [r.id for r in runner.records.list("backup")] == [1, 3]
    assert runner.records.get(99) is None
    with pytest.raises(errors.UsageError):
        list(runner.stream(Job("nonsense"), _body))


def test_declared_locks_are_held_while_the_body_runs(runner):
    stream = runner.stream(Job("prune", locks=("repository",)), _body)
    next(stream)
    with pytest.raises(errors.LockBusy, match="prune job 1"):
        list(runner.stream(Job("backup", shared_locks=("repository",)), _body))
    list(stream)
    list(runner.stream(Job("backup", shared_locks=("repository",)), _body))
    assert [(r.kind, r.result, r.error_class) for r in runner.records.list()] == [
        ("prune", "success", ""), ("backup", "failure", "LockBusy"), ("backup", "success", "")]


def test_a_catalog_from_before_sizes_gains_the_column_and_keeps_its_rows(tmp_path):
    """A jobs table written before backups recorded their size opens; its rows read as size 0 (unknown)."""
    path = str(tmp_path / "catalog.sqlite")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, trigger TEXT NOT NULL, "
               "caller TEXT NOT NULL, components TEXT NOT NULL, snapshot TEXT NOT NULL, started TEXT NOT NULL, "
               "finished TEXT NOT NULL, result TEXT NOT NULL, error_class TEXT NOT NULL, error_message TEXT NOT NULL, "
               "bytes_read INTEGER NOT NULL, bytes_sent INTEGER NOT NULL, bytes_added INTEGER NOT NULL, "
               "files INTEGER NOT NULL, summary TEXT NOT NULL, repository TEXT NOT NULL)")
    db.execute("INSERT INTO jobs (kind, trigger, caller, components, snapshot, started, finished, result, error_class, "
               "error_message, bytes_read, bytes_sent, bytes_added, files, summary, repository) VALUES "
               "('backup', 'timer', 'root', '[\"docs\"]', 's1', 't0', 't1', 'success', '', '', 7, 7, 7, 1, '', "
               "'primary')")
    db.commit()
    db.close()
    records = JobRecords(path)
    old = records.list()[-1]
    assert (old.kind, old.bytes_read, old.bytes_total) == ("backup", 7, 0)
    rec = records.start(JobRecord(0, "backup", "manual", "root", ("docs",), "", "t2"))
    records.finish(JobRecord(**{**rec.as_dict(), "components": ("docs",), "result": "success", "bytes_total": 123}))
    assert records.get(rec.id).bytes_total == 123
    records.close()


def test_a_backup_records_the_size_its_snapshot_holds(runner):
    def body(ctx):
        ctx.note(snapshot="s", components=["docs"], bytes_total=5000)
        ctx.count(bytes_read=0)
        yield ctx.result("done", {})
    list(runner.stream(Job("backup"), body))
    rec = runner.records.list()[-1]
    assert (rec.bytes_read, rec.bytes_total) == (0, 5000)
