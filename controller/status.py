"""The controller's view of "are we safe?": job records, config and the backup volume gathered for
the alert policy, the metrics, `ragctl status` and the status page.

In: the Controller (config, repository path), the job records, the clock. Out: a `Report` (the
policy's AlertState plus what the screens show) and its JSON form; `Watch` re-evaluates the alerts,
writes their start and end to the audit trail and POSTs them to [alerts] webhook.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import threading
import urllib.request
from dataclasses import dataclass

from ragbackup import clock as clocks
from ragbackup.config import ControllerConfig

from ragbackup.controller.audit import Audit
from ragbackup.controller.jobs.records import RUNNING, JobRecord, JobRecords
from ragbackup.controller.policy import alerts as policy
from ragbackup.controller.replication_queue import ReplicationQueue, TierQueue

log = logging.getLogger("ragbackup.controller")
HISTORY = 60  # chart points per series on the status page


@dataclass(frozen=True)
class Report:
    now: _dt.datetime
    state: policy.AlertState
    alerts: tuple[policy.Alert, ...]
    records: tuple[JobRecord, ...]
    volume_path: str
    thresholds: object
    schedule_interval: float | None = None
    replication: tuple[TierQueue, ...] = ()  # one per configured tier
    feeds: tuple[tuple[str, str], ...] = ()  # (tier, feed)




def objectives(cfg: ControllerConfig) -> tuple[float, float]:
    """(RPO, RTO) in seconds, from the config's [objectives] (defaults 4 h and 1 h)."""
    return cfg.objectives.rpo.total_seconds(), cfg.objectives.rto.total_seconds()


def schedule_interval(cfg: ControllerConfig) -> float:
    """Seconds between scheduled backups: the shorter of [schedule] incremental_every and full_every
    (the defaults are those of the shipped timers)."""
    return min(cfg.schedule.incremental_every, cfg.schedule.full_every).total_seconds()


def next_run(report: "Report", interval: float | None, component: str) -> str:
    """The next scheduled backup of `component`, estimated as its last attempt plus the interval."""
    if interval is None:
        return ""
    runs = [j for j in report.state.jobs if j.kind == "backup" and component in j.components]
    if not runs:
        return "due now"
    when = runs[-1].started + _dt.timedelta(seconds=interval)
    return "due now" if when <= report.now else _ts(when)


def volume_path(cfg: ControllerConfig) -> str:
    """The backup volume: a local repository's directory (its nearest existing parent), else the state dir."""
    path = cfg.repository.path if cfg.repository.type == "local" else cfg.state_dir
    while path and not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path or "/"


def job_view(rec: JobRecord) -> policy.JobView | None:
    if rec.result == RUNNING or not rec.finished:
        return None
    return policy.JobView(rec.kind, rec.result, clocks.parse_iso(rec.started), clocks.parse_iso(rec.finished),
                          tuple(rec.components), rec.bytes_read, rec.snapshot, rec.bytes_total)


def gather(cfg: ControllerConfig, records: JobRecords, now: _dt.datetime) -> Report:
    """Read the records and the volume; evaluate the alerts."""
    recs = tuple(records.list())
    views = tuple(v for v in map(job_view, recs) if v is not None)
    path = volume_path(cfg)
    try:
        du = shutil.disk_usage(path)
        total, free = du.total, du.free
    except OSError:
        total = free = 0
    rpo, rto = objectives(cfg)
    queues = replication_queues(cfg)
    state = policy.AlertState(components=tuple(cfg.components), jobs=views, rpo=rpo, rto=rto,
                              volume_total=total, volume_free=free,
                              upload_failures_1h=sum(1 for v in views if v.kind == "replicate" and v.result == "failure"
                                                     and v.finished >= now - _dt.timedelta(hours=1)),
                              replication_lag=max((q.oldest_age(now) for q in queues), default=0.0) if queues else None)
    firing = tuple(policy.evaluate_alerts(state, cfg.alerts, now))
    return Report(now, state, firing, recs, path, cfg.alerts, schedule_interval(cfg), queues,
                  tuple((t.name, t.feed) for t in cfg.tiers.values()))


_QUEUES: dict[str, ReplicationQueue] = {}
_QUEUES_LOCK = threading.Lock()


def replication_queues(cfg: ControllerConfig) -> tuple[TierQueue, ...]:
    """Each tier's queue (depth, oldest, last error) from the catalog's SQLite file; () without tiers."""
    if not cfg.tiers:
        return ()
    path = os.path.join(cfg.state_dir, "catalog.sqlite")
    with _QUEUES_LOCK:
        queue = _QUEUES.get(path) or _QUEUES.setdefault(path, ReplicationQueue(path))
    return tuple(queue.state(name) for name in cfg.tiers)


def replication_row(report: "Report") -> dict:
    """`ragctl status`'s replication part: the lag and, per tier, its queue."""
    if not report.replication:
        return {"lag_seconds": None, "note": "no offsite replication configured", "tiers": []}
    feeds = dict(report.feeds)
    tiers = [{"tier": q.tier, "feed": feeds.get(q.tier, ""), "queue_depth": q.depth,
              "oldest_age_seconds": q.oldest_age(report.now), "last_error": q.last_error,
              "last_done": _ts(q.last_done)} for q in report.replication]
    waiting = sum(t["queue_depth"] for t in tiers)
    return {"lag_seconds": report.state.replication_lag, "tiers": tiers,
            "note": f"{waiting} snapshot(s) waiting" if waiting else "every tier up to date"}


def _ts(when: _dt.datetime | None) -> str:
    return clocks.iso(when) if when else ""


def component_rows(report: Report) -> list[dict]:
    out = []
    for comp in report.state.components:
        good = policy.newest_good_backup(report.state.jobs, comp)
        seconds = policy.age(good.finished if good else None, report.now)
        proven = policy.newest_drill_verified_backup(report.state.jobs, comp)
        proven_s = policy.age(proven.finished if proven else None, report.now)
        out.append({"component": comp, "newest_good_backup": _ts(good.finished if good else None),
                    "age_seconds": seconds, "rpo_seconds": report.state.rpo,
                    "within_rpo": seconds is not None and seconds <= report.state.rpo,
                    "newest_drill_verified_backup": _ts(proven.finished if proven else None),
                    "drill_verified_age_seconds": proven_s,
                    "within_rpo_drill_verified": proven_s is not None and proven_s <= report.state.rpo,
                    "next_run": next_run(report, report.schedule_interval, comp)})
    return out


def drill_row(report: Report) -> dict:
    d = policy.last_drill(report.state.jobs)
    if d is None:
        return {"last": "", "result": "no drill yet", "duration_seconds": None, "rto_seconds": report.state.rto,
                "within_rto": False}
    return {"last": _ts(d.finished), "result": d.result, "duration_seconds": d.duration,
            "rto_seconds": report.state.rto, "within_rto": d.result == "success" and d.duration <= report.state.rto}


def history(report: Report) -> dict:
    """The status page's chart data: backups (time, size, duration, ok) and drills (time, duration, ok)."""
    def rows(kind: str) -> list[dict]:
        views = [j for j in report.state.jobs if j.kind == kind][-HISTORY:]
        return [{"time": _ts(j.finished), "bytes_read": j.bytes_read, "bytes_total": j.bytes_total,
                 "duration_seconds": j.duration, "ok": j.result == "success"} for j in views]
    return {"backups": rows("backup"), "drills": rows("drill")}


def as_dict(report: Report) -> dict:
    t = report.thresholds
    vol = report.state
    return {
        "time": _ts(report.now),
        "safe": not report.alerts,
        "components": component_rows(report),
        "drill": drill_row(report),
        "alerts": [a.as_dict() for a in report.alerts],
        "thresholds": {k: getattr(t, k) for k in t.__dataclass_fields__ if k != "webhook"},
        "objectives": {"rpo_seconds": vol.rpo, "rto_seconds": vol.rto},
        "volume": {"path": report.volume_path, "size_bytes": vol.volume_total, "free_bytes": vol.volume_free,
                   "free_ratio": (vol.volume_free / vol.volume_total) if vol.volume_total else None},
        "replication": replication_row(report),
        "history": history(report),
    }


class Watch:
    """Re-evaluates the alerts (after every job and every `interval` seconds): audits each alert's
    start and end and POSTs the change to the webhook. The firing set is kept in the state dir."""

    def __init__(self, cfg: ControllerConfig, records: JobRecords, audit: Audit,
                 clock: clocks.Clock = clocks.SYSTEM):
        self.cfg, self.records, self.audit, self.clock = cfg, records, audit, clock
        self._path = os.path.join(cfg.state_dir, "alerts.json")
        self._lock = threading.Lock()
        self._firing = self._load()

    def _load(self) -> set[str]:
        try:
            with open(self._path, encoding="utf-8") as f:
                return set(json.load(f))
        except (OSError, ValueError):
            return set()

    def _save(self) -> None:
        """Keep the firing set across restarts; a state_dir that cannot take it (read-only, full) costs
        only that: a restart would announce the firing alerts again. Said in one log line."""
        tmp = self._path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(sorted(self._firing), f)
            os.replace(tmp, self._path)
        except OSError as exc:
            log.warning("state_dir: cannot save the firing alerts to %s: %s (a restart announces them again)",
                        self._path, exc.strerror or exc)

    def report(self) -> Report:
        return gather(self.cfg, self.records, self.clock.now())

    def evaluate(self, *_: object) -> Report:
        """Gather, compare with the last evaluation, audit and notify the changes."""
        report = self.report()
        with self._lock:
            started, stopped = policy.changes(self._firing, list(report.alerts))
            if not started and not stopped:
                return report
            for a in started:
                self.audit.record("alert", "controller", "firing", alert=a.name, severity=a.severity,
                                  component=a.component or "-", summary=a.summary)
            for key in stopped:
                name, _, comp = key.partition("/")
                self.audit.record("alert", "controller", "resolved", alert=name, component=comp or "-")
            self._firing = {a.key for a in report.alerts}
            self._save()
        self._notify(started, stopped)
        return report

    def after_job(self, _record: object) -> None:
        """The runner's on_finish hook: re-evaluate; a failure here is logged, never fails the job."""
        try:
            self.evaluate()
        except Exception:  # noqa: BLE001 - the job already ended; its outcome must stand
            log.exception("alert evaluation after a job failed")

    def _notify(self, started: list[policy.Alert], stopped: list[str]) -> None:
        if not self.cfg.alerts.webhook:
            return
        body = json.dumps({"source": "rag-backup-controller", "host": self.cfg.hostname,
                           "firing": [a.as_dict() for a in started], "resolved": stopped}).encode()
        threading.Thread(target=self._post, args=(body,), name="alert-webhook", daemon=True).start()

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(self.cfg.alerts.webhook, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10):
                pass
        except OSError as exc:
            log.warning("alert webhook %s: %s", self.cfg.alerts.webhook, exc)

    def run(self, stop: threading.Event, interval: float = 30.0) -> threading.Thread:
        """Evaluate every `interval` seconds in a daemon thread until `stop` is set."""
        def loop() -> None:
            while True:
                try:
                    self.evaluate()
                except Exception:  # noqa: BLE001 - a broken evaluation must not end the loop; it is logged
                    log.exception("alert evaluation failed")
                if stop.wait(interval):
                    return
        t = threading.Thread(target=loop, name="alerts", daemon=True)
        t.start()
        return t
