"""Metrics, status and the alert watch over real job records (SQLite) and a fake clock: label sets
start at 0, values come back after a restart, drills show when they exist, alerts are audited and
POSTed once per change."""
from __future__ import annotations

import datetime as _dt
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ragbackup import clock as clocks
from ragbackup.config import load_controller_config
from ragbackup.controller import metrics, status_page
from ragbackup.controller.audit import Audit
from ragbackup.controller.jobs.records import JobRecord, JobRecords
from ragbackup.controller.jobs.runner import KINDS
from ragbackup.controller.status import Watch, as_dict
from tests.fixtures.procs import wait_until

T0 = _dt.datetime(2026, 12, 1, 12, 0, tzinfo=_dt.timezone.utc)


def _config(tmp_path, extra=""):
    (tmp_path / "repo").mkdir(exist_ok=True)
    (tmp_path / "repo" / "pack").write_bytes(b"x" * 500)
    p = tmp_path / "c.toml"
    p.write_text(f"""
[controller]
state_dir = "{tmp_path}/state"
[repository]
path = "{tmp_path}/repo"
password = "pw"
[tls]
insecure = true
[agents.a]
address = "127.0.0.1:1"
[components.docs]
kind = "paths"
agent = "a"
path = "/srv/docs"
[components.cache]
kind = "redis"
agent = "a"
{extra}
""")
    return load_controller_config(str(p))


def _add(records, kind, result, start, minutes, comps=("docs", "cache"), read=1000, added=100,  # noqa: PLR0913
         total=0):
    rec = records.start(JobRecord(0, kind, "manual", "op", tuple(comps), "", clocks.iso(start)))
    end = start + _dt.timedelta(minutes=minutes)
    records.finish(JobRecord(rec.id, kind, "manual", "op", tuple(comps), "s1", clocks.iso(start), clocks.iso(end),
                             result, bytes_read=read, bytes_sent=read, bytes_added=added, bytes_total=total))


def _scrape(watch) -> dict:
    out = {}
    for fam in text_string_to_metric_families(generate_latest(metrics.registry(watch)).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def setup(tmp_path):
    cfg = _config(tmp_path)
    records = JobRecords(str(tmp_path / "state" / "catalog.sqlite"))
    clock = clocks.FakeClock(T0)
    audit_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    audit_sock.bind(str(tmp_path / "audit.sock"))
    audit_sock.settimeout(2)
    yield cfg, records, clock, Audit(str(tmp_path / "audit.sock")), audit_sock
    audit_sock.close()
    records.close()


def test_every_label_set_starts_at_zero(setup):
    cfg, records, clock, audit, _ = setup
    m = _scrape(Watch(cfg, records, audit, clock))
    for kind in KINDS:
        for result in metrics.RESULTS:
            assert m[("rag_backup_jobs_total", (("kind", kind), ("result", result)))] == 0
    assert not any(k[0] == "rag_backup_last_success_timestamp_seconds" for k in m)  # absent until a success
    assert not any(k[0].startswith("rag_backup_drill_") for k in m)  # no drill yet
    assert m[("rag_backup_rpo_seconds", ())] == 4 * 3600 and m[("rag_backup_rto_seconds", ())] == 3600
    assert m[("rag_backup_repository_size_bytes", (("repository", "primary"),))] == 500
    assert m[("rag_backup_upload_failures_total", ())] == 0


def test_values_come_from_records_and_survive_a_restart(setup, tmp_path):
    cfg, records, clock, audit, _ = setup
    _add(records, "backup", "success", T0 - _dt.timedelta(hours=3), 20)
    _add(records, "backup", "failure", T0 - _dt.timedelta(hours=1), 2, comps=("cache",))
    _add(records, "drill", "success", T0 - _dt.timedelta(minutes=30), 12, comps=())
    first = _scrape(Watch(cfg, records, audit, clock))
    records.close()
    again = JobRecords(str(tmp_path / "state" / "catalog.sqlite"))  # a new controller over the same file
    m = _scrape(Watch(cfg, again, audit, clock))
    again.close()
    volume = ("rag_backup_volume_free_bytes", ())  # the real disk's free space moves between scrapes

    def recorded(scrape: dict) -> dict:  # the values from the records: not the live process_* ones
        return {k: v for k, v in scrape.items() if k != volume and k[0].startswith("rag_backup_")}
    assert recorded(m) == recorded(first) and len(recorded(m)) > 100
    assert m[("rag_backup_jobs_total", (("kind", "backup"), ("result", "failure")))] == 1
    ok = (T0 - _dt.timedelta(hours=3) + _dt.timedelta(minutes=20)).timestamp()
    assert m[("rag_backup_last_success_timestamp_seconds", (("component", "docs"),))] == ok
    assert m[("rag_backup_last_status", (("component", "cache"),))] == 0
    assert m[("rag_backup_last_status", (("component", "docs"),))] == 1
    assert m[("rag_backup_job_duration_seconds_bucket", (("kind", "backup"), ("le", "600.0")))] == 1
    assert m[("rag_backup_job_duration_seconds_bucket", (("kind", "backup"), ("le", "1800.0")))] == 2
    assert m[("rag_backup_drill_last_success", ())] == 1
    assert m[("rag_backup_drill_last_duration_seconds", ())] == 12 * 60
    assert m[("rag_backup_bytes_read_total", (("kind", "backup"),))] == 2000
    assert m[("rag_backup_repository_dedup_ratio", (("repository", "primary"),))] == 2.0  # 1000 read / 500 stored
    assert m[("rag_backup_alert_firing", (("alert", "RagBackupJobFailed"),))] == 1


def test_sizes_and_dedup_ratio_count_the_data_each_backup_holds(setup):
    """An unchanged backup reads nothing but holds all its data: the size gauges and the ratio count that."""
    cfg, records, clock, audit, _ = setup
    _add(records, "backup", "success", T0 - _dt.timedelta(hours=3), 20, read=3000, total=3000)
    _add(records, "backup", "success", T0 - _dt.timedelta(hours=2), 1, read=0, total=3000)
    m = _scrape(Watch(cfg, records, audit, clock))
    assert m[("rag_backup_last_size_bytes", (("kind", "backup"),))] == 3000
    assert m[("rag_backup_size_baseline_bytes", (("kind", "backup"),))] == 3000
    assert m[("rag_backup_repository_dedup_ratio", (("repository", "primary"),))] == 12.0  # 6000 held / 500 stored
    assert m[("rag_backup_alert_firing", (("alert", "RagBackupSizeDeviation"),))] == 0


def test_no_label_holds_ids_paths_or_errors(setup):
    cfg, records, clock, audit, _ = setup
    _add(records, "backup", "failure", T0 - _dt.timedelta(hours=1), 2)
    labels = {k for key in _scrape(Watch(cfg, records, audit, clock)) for k, _ in key[1]}
    assert labels <= {"kind", "result", "component", "repository", "alert", "le"}


class _Hook(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_watch_audits_and_posts_each_change_once(setup, tmp_path):
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        cfg = _config(tmp_path, f'[alerts]\nwebhook = "http://127.0.0.1:{hook.server_address[1]}/hook"\n'
                               "min_free_ratio = 0.001\n")  # the host's own disk is not what this test watches
        _, records, clock, audit, sock = setup
        _add(records, "backup", "success", T0 - _dt.timedelta(hours=2), 1)
        watch = Watch(cfg, records, audit, clock)
        assert watch.evaluate().alerts == ()
        _add(records, "backup", "failure", T0 - _dt.timedelta(minutes=10), 1)
        watch.evaluate()
        watch.evaluate()  # no change: nothing new
        line = sock.recv(4096).decode()
        assert "action=alert" in line and "outcome=firing" in line and "alert=RagBackupJobFailed" in line
        wait_until(lambda: _Hook.bodies, 10, "the webhook POST")  # sent from its own thread
        assert [b["firing"][0]["name"] for b in _Hook.bodies] == ["RagBackupJobFailed"]
        assert Watch(cfg, records, audit, clock)._firing == {"RagBackupJobFailed/backup"}  # kept across restarts
        clock.advance(3600)
        watch.evaluate()
        assert "outcome=resolved" in sock.recv(4096).decode()
        wait_until(lambda: len(_Hook.bodies) == 2, 10, "the second webhook POST")
        assert _Hook.bodies[-1]["resolved"] == ["RagBackupJobFailed/backup"]
    finally:
        hook.shutdown()
        hook.server_close()


def test_status_page_shows_components_alerts_and_no_drill(setup):
    cfg, records, clock, audit, _ = setup
    _add(records, "backup", "success", T0 - _dt.timedelta(hours=2), 1)
    _add(records, "backup", "failure", T0 - _dt.timedelta(minutes=10), 1)
    st = as_dict(Watch(cfg, records, audit, clock).report())
    assert st["drill"]["result"] == "no drill yet" and not st["safe"]
    html = status_page.render(st)
    assert "RagBackupJobFailed" in html and ">docs<" in html and ">cache<" in html and "no drill yet" in html
    assert "Backup size (data held)" in html and st["history"]["backups"][0]["bytes_total"] == 0
    assert "<svg" in html and "http" not in html.replace('http-equiv', '')  # no external assets


def test_every_exported_metric_is_documented(setup):
    import os
    import re
    cfg, records, clock, audit, _ = setup
    _add(records, "backup", "success", T0 - _dt.timedelta(hours=2), 1)
    _add(records, "drill", "success", T0 - _dt.timedelta(hours=1), 1, comps=())
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "OBSERVABILITY.md")).read()
    documented = set(re.findall(r"`((?:rag_backup|process)_[a-z_]+)[`{]", doc))
    names = {re.sub(r"_(bucket|sum|count|created)$", "", k[0]) for k in _scrape(Watch(cfg, records, audit, clock))}
    assert names - documented == set()


def test_next_run_from_schedule(setup, tmp_path):
    _, records, clock, audit, _ = setup
    cfg = _config(tmp_path)  # no [schedule]: the shipped timers' cadence
    assert [c["next_run"] for c in as_dict(Watch(cfg, records, audit, clock).report())["components"]] == \
        ["due now", "due now"]
    cfg = _config(tmp_path, '[schedule]\nincremental_every = "6h"\nfull_every = "24h"\n')
    _add(records, "backup", "success", T0 - _dt.timedelta(hours=2), 1, comps=("docs",))
    rows = {c["component"]: c["next_run"] for c in as_dict(Watch(cfg, records, audit, clock).report())["components"]}
    assert rows == {"docs": "2026-12-01T16:00:00Z", "cache": "due now"}


def test_replication_queue_shows_in_metrics_status_and_the_lag_alert(tmp_path):
    from ragbackup.controller.replication_queue import ReplicationQueue

    cfg = _config(tmp_path, '[tiers.s3]\nbucket = "b"\n[tiers.dr]\nbucket = "c"\nfeed = "s3"\n')
    records = JobRecords(str(tmp_path / "state" / "catalog.sqlite"))
    queue = ReplicationQueue(str(tmp_path / "state" / "catalog.sqlite"))
    queue.enqueue("s3", ["snap-a", "snap-b"], T0 - _dt.timedelta(hours=30))
    queue.enqueue("dr", ["snap-b"], T0 - _dt.timedelta(hours=1))
    queue.failed("s3", "S3 endpoint http://x: put failed", T0)
    watch = Watch(cfg, records, Audit(str(tmp_path / "none.sock")), clocks.FakeClock(T0))
    m = _scrape(watch)
    assert m[("rag_backup_replication_queue_depth", ())] == 3
    assert m[("rag_backup_replication_oldest_age_seconds", ())] == 30 * 3600
    assert m[("rag_backup_replication_tier_queue_depth", (("tier", "dr"),))] == 1
    assert m[("rag_backup_replication_tier_oldest_age_seconds", (("tier", "dr"),))] == 3600
    assert not any(k[0] == "rag_backup_replication_last_success_timestamp_seconds" for k in m)
    st = as_dict(watch.report())
    s3 = st["replication"]["tiers"][0]
    assert (s3["tier"], s3["feed"], s3["queue_depth"], s3["last_error"]) == ("s3", "primary", 2,
                                                                            "S3 endpoint http://x: put failed")
    assert "RagBackupReplicationLag" in {a["name"] for a in st["alerts"]}
    queue.done("s3", ["snap-a", "snap-b"], T0)
    m = _scrape(watch)
    assert m[("rag_backup_replication_last_success_timestamp_seconds", (("tier", "s3"),))] == T0.timestamp()


def test_the_controller_process_reports_its_own_memory_and_cpu(setup):
    """The standard process metrics come with the controller's own: an operator sees its memory."""
    cfg, records, clock, audit, _ = setup
    scraped = _scrape(Watch(cfg, records, audit, clock))
    rss = scraped[("process_resident_memory_bytes", ())]
    assert 10 * 2**20 < rss < 64 * 2**30
    assert scraped[("process_cpu_seconds_total", ())] > 0 and scraped[("process_open_fds", ())] >= 3
