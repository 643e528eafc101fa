"""Prometheus metrics of the controller, computed at each scrape from the job records, so every
value survives a restart; served with the status page on [metrics] listen.

In: a `Watch` (config, job records, clock). Out: `rag_backup_*` metric families (docs/OBSERVABILITY.md
lists them) on GET /metrics; the status page on GET / and /status, its data on GET /status.json.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ragbackup.controller import status_page
from ragbackup.controller.jobs.records import CANCELLED, FAILURE, INTERRUPTED, SUCCESS
from ragbackup.controller.jobs.runner import KINDS
from ragbackup.controller.policy import alerts as policy
from ragbackup.controller.status import Report, Watch, as_dict

log = logging.getLogger("ragbackup.controller")
RESULTS = (SUCCESS, FAILURE, CANCELLED, INTERRUPTED)
BUCKETS = (10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800)  # backups take minutes to hours
BYTE_COUNTERS = (("bytes_read", "read from the sources"), ("bytes_sent", "sent to the controller"),
                 ("bytes_added", "added to the repository after deduplication and compression"))


def _ts(when) -> float:
    return when.timestamp()


def _jobs(report: Report) -> Iterator[Metric]:
    counts = CounterMetricFamily("rag_backup_jobs", "Jobs ended, by kind and result.", labels=["kind", "result"])
    tally = {(k, r): 0 for k in KINDS for r in RESULTS}
    for j in report.state.jobs:
        tally[(j.kind, j.result)] = tally.get((j.kind, j.result), 0) + 1
    for (kind, result), n in sorted(tally.items()):
        counts.add_metric([kind, result], n)
    yield counts
    hist = HistogramMetricFamily("rag_backup_job_duration_seconds", "Duration of ended jobs.", labels=["kind"])
    for kind in KINDS:
        durations = [j.duration for j in report.state.jobs if j.kind == kind]
        buckets = [(str(float(b)), sum(1 for d in durations if d <= b)) for b in BUCKETS] + [("+Inf", len(durations))]
        hist.add_metric([kind], buckets, sum(durations))
    yield hist


def _bytes(report: Report) -> Iterator[Metric]:
    for attr, what in BYTE_COUNTERS:
        fam = CounterMetricFamily(f"rag_backup_{attr}", f"Bytes {what} by jobs, by kind.", labels=["kind"])
        for kind in KINDS:
            fam.add_metric([kind], sum(getattr(r, attr) for r in report.records if r.kind == kind))
        yield fam


def _components(report: Report) -> Iterator[Metric]:
    last_ok = GaugeMetricFamily("rag_backup_last_success_timestamp_seconds",
                                "Finish time of the newest successful backup of a component.", labels=["component"])
    status = GaugeMetricFamily("rag_backup_last_status", "1 when the newest backup of a component succeeded, "
                               "0 when it failed.", labels=["component"])
    exposure = GaugeMetricFamily("rag_backup_rpo_exposure_seconds",
                                 "Age of the newest good backup of a component (data at risk now).", labels=["component"])
    proven = GaugeMetricFamily("rag_backup_rpo_drill_verified_exposure_seconds",
                               "Age of the newest backup of a component that a restore drill proved.",
                               labels=["component"])
    configured = GaugeMetricFamily("rag_backup_component_configured", "1 for every component in [components].",
                                   labels=["component"])
    for comp in report.state.components:
        configured.add_metric([comp], 1.0)
        good = policy.newest_good_backup(report.state.jobs, comp)
        if good is not None:
            last_ok.add_metric([comp], _ts(good.finished))
            exposure.add_metric([comp], policy.age(good.finished, report.now) or 0.0)
        drilled = policy.newest_drill_verified_backup(report.state.jobs, comp)
        if drilled is not None:
            proven.add_metric([comp], policy.age(drilled.finished, report.now) or 0.0)
        runs = [j for j in report.state.jobs if j.kind in ("backup", "import") and comp in j.components
                and j.result in (SUCCESS, FAILURE, INTERRUPTED)]
        if runs:
            status.add_metric([comp], 1.0 if runs[-1].result == SUCCESS else 0.0)
    yield from (configured, last_ok, status, exposure, proven)
    good = [j for j in report.state.jobs if j.kind in ("backup", "import") and j.result == SUCCESS]
    if good:
        yield _gauge("rag_backup_first_success_timestamp_seconds", "Finish time of the oldest successful backup "
                     "(drills are due from then on).", _ts(min(j.finished for j in good)))


def _sizes(report: Report) -> Iterator[Metric]:
    size = GaugeMetricFamily("rag_backup_last_size_bytes", "Bytes of data the newest successful job of a kind "
                             "holds (its snapshot's files, every component).", labels=["kind"])
    base = GaugeMetricFamily("rag_backup_size_baseline_bytes",
                             f"Median size of the {policy.BASELINE_RUNS} successes before the newest that covered "
                             "the same components.", labels=["kind"])
    for kind in ("backup",):
        sized = [j for j in policy.successes(report.state.jobs, kind) if j.bytes_total > 0]
        if sized:
            size.add_metric([kind], sized[-1].bytes_total)
        pair = policy.size_baseline(report.state.jobs, kind)
        if pair is not None:
            base.add_metric([kind], pair[1])
    yield from (size, base)


def _repository(report: Report, stored: dict[str, int]) -> Iterator[Metric]:
    size = GaugeMetricFamily("rag_backup_repository_size_bytes", "Bytes the repository stores.",
                             labels=["repository"])
    ratio = GaugeMetricFamily("rag_backup_repository_dedup_ratio",
                              "Bytes of data all successful backups and imports hold over bytes stored.",
                              labels=["repository"])
    for name, nbytes in stored.items():
        size.add_metric([name], nbytes)
        logical = sum(r.bytes_total or r.bytes_read for r in report.records  # read: records before sizes were
                      if r.repository == name and r.kind in ("backup", "import") and r.result == SUCCESS)
        ratio.add_metric([name], logical / nbytes if nbytes else 0.0)
    yield from (size, ratio)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _volume_and_objectives(report: Report) -> Iterator[Metric]:
    s = report.state
    if s.volume_total:
        yield _gauge("rag_backup_volume_size_bytes", "Size of the backup volume.", s.volume_total)
        yield _gauge("rag_backup_volume_free_bytes", "Bytes available on the backup volume.", s.volume_free)
    yield _gauge("rag_backup_rpo_seconds", "Recovery point objective.", s.rpo)
    yield _gauge("rag_backup_rto_seconds", "Recovery time objective.", s.rto)
    queues = report.replication
    yield _gauge("rag_backup_replication_queue_depth", "Snapshots waiting for offsite replication, all tiers "
                 "(0: none waiting or no tier configured).", sum(q.depth for q in queues))
    yield _gauge("rag_backup_replication_oldest_age_seconds", "Age of the oldest snapshot waiting for "
                 "replication (0: none waiting).", max((q.oldest_age(report.now) for q in queues), default=0.0))
    yield from _replication_tiers(report)
    yield CounterMetricFamily("rag_backup_upload_failures", "Replication runs that failed (an offsite upload "
                              "or copy that did not complete).",
                              value=sum(1 for r in report.records if r.kind == "replicate" and r.result == "failure"))


def _replication_tiers(report: Report) -> Iterator[Metric]:
    depth = GaugeMetricFamily("rag_backup_replication_tier_queue_depth", "Snapshots waiting for one tier.",
                              labels=["tier"])
    age = GaugeMetricFamily("rag_backup_replication_tier_oldest_age_seconds", "Age of the oldest snapshot "
                            "waiting for one tier (0: none).", labels=["tier"])
    last = GaugeMetricFamily("rag_backup_replication_last_success_timestamp_seconds", "When a replication to "
                             "the tier last completed (absent until one did).", labels=["tier"])
    for q in report.replication:
        depth.add_metric([q.tier], q.depth)
        age.add_metric([q.tier], q.oldest_age(report.now))
        if q.last_done:
            last.add_metric([q.tier], q.last_done.timestamp())
    yield from (depth, age, last)


def _drills(report: Report) -> Iterator[Metric]:
    d = policy.last_drill(report.state.jobs)
    if d is None:
        return  # no drill yet: the drill series are absent (docs/OBSERVABILITY.md)
    yield _gauge("rag_backup_drill_last_timestamp_seconds", "Finish time of the newest drill.", _ts(d.finished))
    yield _gauge("rag_backup_drill_last_success", "1 when the newest drill succeeded, else 0.",
                 1.0 if d.result == SUCCESS else 0.0)
    yield _gauge("rag_backup_drill_last_duration_seconds", "Duration of the newest drill (against the RTO).",
                 d.duration)
    good = policy.successes(report.state.jobs, "drill")
    if good:
        yield _gauge("rag_backup_drill_last_success_timestamp_seconds", "Finish time of the newest good drill.",
                     _ts(good[-1].finished))


def _alerts(report: Report) -> Iterator[Metric]:
    fam = GaugeMetricFamily("rag_backup_alert_firing", "1 while the controller's own evaluation of an alert "
                            "fires (any component).", labels=["alert"])
    names = {a.name for a in report.alerts}
    for name in policy.ALERT_NAMES:
        fam.add_metric([name], 1.0 if name in names else 0.0)
    yield fam


def repository_bytes(path: str) -> int:
    """Bytes under a local repository directory."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class Collector:
    """A prometheus_client collector over the Watch's report (one gather per scrape)."""

    def __init__(self, watch: Watch):
        self.watch = watch

    def stored(self, report: Report) -> dict[str, int]:
        cfg = self.watch.cfg
        if cfg.repository.type == "local":
            return {"primary": repository_bytes(cfg.repository.path)}
        return {"primary": sum(r.bytes_added for r in report.records if r.result == SUCCESS)}

    def collect(self) -> Iterator[Metric]:
        report = self.watch.report()
        for part in (_jobs, _bytes, _components, _sizes, _volume_and_objectives, _drills, _alerts):
            yield from part(report)
        yield from _repository(report, self.stored(report))


def registry(watch: Watch) -> CollectorRegistry:
    """The controller's metrics: the Watch's `rag_backup_*` families and the standard `process_*` ones of
    this process (resident memory, CPU, open files), read from /proc at each scrape."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(watch))
    ProcessCollector(registry=reg)
    return reg


class _Handler(BaseHTTPRequestHandler):
    server: "MetricsServer"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        try:
            self._get(self.path.split("?")[0])
        except Exception as exc:  # noqa: BLE001 - answer 500 naming the cause instead of dropping the connection
            log.exception("metrics http: GET %s failed", self.path)
            self._send(500, "text/plain", f"error: {type(exc).__name__}: {exc}\n".encode())

    def _get(self, path: str) -> None:
        if path == "/metrics":
            self._send(200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(self.server.registry))
        elif path == "/status.json":
            body = json.dumps(as_dict(self.server.watch.report()), indent=1).encode()
            self._send(200, "application/json", body)
        elif path in ("/", "/status"):
            self._send(200, "text/html; charset=utf-8", status_page.render(as_dict(self.server.watch.report())).encode())
        else:
            self._send(404, "text/plain", b"not found: try /metrics, /status or /status.json\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        log.debug("metrics http: " + fmt, *args)


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], watch: Watch):
        super().__init__(address, _Handler)
        self.watch = watch
        self.registry = registry(watch)


def serve(listen: str, watch: Watch) -> tuple[MetricsServer, int]:
    """Start serving on HOST:PORT in a daemon thread; returns (server, bound port). Stop with shutdown()."""
    host, _, port = listen.rpartition(":")
    srv = MetricsServer((host.strip("[]"), int(port)), watch)
    threading.Thread(target=srv.serve_forever, name="metrics-http", daemon=True).start()
    return srv, srv.server_address[1]
