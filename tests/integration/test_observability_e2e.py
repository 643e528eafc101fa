"""Observability end to end: a real controller and agent, a real Prometheus scraping the controller
with the shipped rules, a real Alertmanager and a webhook receiver on loopback, the backup volume a
small tmpfs, and headless Chromium on the status page.

A failed backup (agent down) fires RagBackupJobFailed at the webhook (through Alertmanager, and from
the controller's own evaluation); the volume filled past 90% fires RagBackupVolumeLowSpace; both show
in `ragctl status` (exit 10) and on the status page; every Grafana panel query returns series.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ragbackup.localstack import LocalStack
from tests.fixtures.procs import free_port, stop_process, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "packaging", "prometheus", "rag-backup.rules.yml")
DASHBOARD = os.path.join(ROOT, "packaging", "grafana", "rag-backup.json")
CHROMIUM = shutil.which("chromium")

needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
    reason="prometheus / prometheus-alertmanager not installed (scripts/setup.sh --test)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs as the backup volume: needs root")


class Receiver:
    """A webhook receiver on 127.0.0.1 keeping every JSON body POSTed, by path."""

    def __init__(self):
        self.bodies: list[tuple[str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.bodies.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alertmanager_firing(self) -> set[str]:
        return {a["labels"]["alertname"] for path, b in self.bodies if path == "/am"
                for a in b.get("alerts", []) if a.get("status") == "firing"}

    def controller_firing(self) -> set[str]:
        return {a["name"] for path, b in self.bodies if path == "/controller" for a in b.get("firing", [])}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def tmpfs(path: str, size: str = "16m"):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


@contextlib.contextmanager
def process(argv: list[str], log: str):
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_process(proc)


def _alertmanager(tmp, port: int, hook: int):
    cfg = tmp / "alertmanager.yml"
    cfg.write_text(f"""route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{hook}/am
        send_resolved: true
""")
    return process(["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={tmp / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], str(tmp / "am.log"))


def _prometheus(tmp, port: int, target: int, am: int):
    # the shipped rules; `for:` waits (minutes in production, covered by promtool tests) cut to 0s here
    rules = re.sub(r"(\n\s+)for: \S+", r"\1for: 0s", open(RULES, encoding="utf-8").read())
    (tmp / "rules.yml").write_text(rules)
    cfg = tmp / "prometheus.yml"
    cfg.write_text(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{tmp / 'rules.yml'}]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["127.0.0.1:{am}"]}}]
scrape_configs:
  - job_name: rag-backup
    static_configs: [{{targets: ["127.0.0.1:{target}"]}}]
""")
    return process(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{port}"], str(tmp / "prometheus.log"))


def _query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def _scrape(port: int) -> dict[str, str]:
    """The controller's /metrics as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    return dict(line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))


def _status(st: LocalStack) -> tuple[int, dict]:
    cp = st.ragctl("status", "--json", check=False, timeout=60)
    return cp.returncode, json.loads(cp.stdout)


@needs_prometheus
@needs_root
def test_alerts_fire_end_to_end(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_bytes(os.urandom(64 * 1024))
    hook = Receiver()
    metrics_port, prom_port, am_port = free_port(), free_port(), free_port()
    st = LocalStack(str(tmp_path / "stack"))
    try:
        with tmpfs(str(tmp_path / "volume")) as volume, contextlib.ExitStack() as stack, \
                _alertmanager(tmp_path, am_port, hook.port), _prometheus(tmp_path, prom_port, metrics_port, am_port):
            st.repo_dir = os.path.join(volume, "repository")
            st.add_paths_component("docs", str(docs))
            st.controller_extra = (f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n\n'
                                   f'[alerts]\nwebhook = "http://127.0.0.1:{hook.port}/controller"\n')
            stack.callback(st.stop)  # before the volume is unmounted
            st.start()
            st.ragctl("init")
            st.ragctl("backup", "--json")
            st.ragctl("backup", "--json")  # unchanged: reads nothing, holds the same data: no size deviation
            wait_until(lambda: _query(prom_port, 'rag_backup_jobs_total{kind="backup",result="failure"}'), 60,
                       "Prometheus scraping the controller")
            assert _status(st)[0] == 0, _status(st)[1]["alerts"]
            before = _scrape(metrics_port)
            assert float(before['rag_backup_last_size_bytes{kind="backup"}']) == 64 * 1024
            assert float(before['rag_backup_size_baseline_bytes{kind="backup"}']) == 64 * 1024
            st.restart_controller()  # the values come back from the job records
            wait_until(lambda: _scrape(metrics_port), 30, "the restarted controller's /metrics")
            after = _scrape(metrics_port)
            for key in ('rag_backup_last_success_timestamp_seconds{component="docs"}',
                        'rag_backup_jobs_total{kind="backup",result="success"}'):
                assert before[key] == after[key], key

            st.stop_process("agent")  # the agent is down: the next backup fails
            assert st.ragctl("backup", check=False, timeout=120).returncode != 0
            t0 = time.monotonic()
            wait_until(lambda: "RagBackupJobFailed" in hook.alertmanager_firing(), 90,
                       "RagBackupJobFailed at the webhook through Alertmanager")
            print(f"job failure -> webhook through Prometheus and Alertmanager: {time.monotonic() - t0:.1f} s")
            assert "RagBackupJobFailed" in hook.controller_firing()

            free = shutil.disk_usage(volume).free
            with open(os.path.join(volume, "filler"), "wb") as f:
                f.write(b"\0" * (free - shutil.disk_usage(volume).total // 20))  # leave ~5% free
            t0 = time.monotonic()
            wait_until(lambda: "RagBackupVolumeLowSpace" in hook.alertmanager_firing(), 90,
                       "RagBackupVolumeLowSpace at the webhook through Alertmanager")
            print(f"volume filled -> webhook: {time.monotonic() - t0:.1f} s")

            code, status = _status(st)
            assert code == 10
            assert {"RagBackupJobFailed", "RagBackupVolumeLowSpace"} <= {a["name"] for a in status["alerts"]}
            assert status["volume"]["free_ratio"] < 0.10
            text = st.ragctl("status", check=False).stdout
            assert "NOT SAFE" in text and "RagBackupVolumeLowSpace" in text and "docs" in text
            _dashboard_queries_return_series(prom_port)
            if CHROMIUM:
                _status_page_in_chromium(tmp_path, metrics_port, "RagBackupVolumeLowSpace")
    finally:
        st.stop()
        hook.close()
        for proc in ("agent", "controller"):
            print(f"--- {proc}.log (tail)\n{st.log_tail(proc, 15)}")


def _dashboard_queries_return_series(prom_port: int) -> None:
    with open(DASHBOARD, encoding="utf-8") as f:
        dash = json.load(f)
    empty = [p["title"] for p in dash["panels"] for t in p["targets"] if not _query(prom_port, t["expr"])]
    assert not empty, f"panels without series: {empty}"


def _status_page_in_chromium(tmp_path, port: int, alert: str) -> None:
    """Headless Chromium renders the page: the DOM names the component and the active alert; a
    screenshot is kept as the test's artifact (its path is printed)."""
    url = f"http://127.0.0.1:{port}/status"
    base = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chrome'}"]
    dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert alert in dom and ">docs<" in dom and "NOT SAFE" in dom
    shot = tmp_path / "status-page.png"
    subprocess.run(base + [f"--screenshot={shot}", "--window-size=1200,1400", url], capture_output=True,
                   timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"status page screenshot: {shot}")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/setup.sh --test)")
def test_status_page_in_headless_chromium(tmp_path):
    """Without Prometheus: a failed backup makes the controller's own job-failure alert show on the page."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("hello")
    port = free_port()
    st = LocalStack(str(tmp_path / "stack"))
    st.add_paths_component("docs", str(docs))
    st.controller_extra = f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
    try:
        st.start()
        st.ragctl("init")
        st.ragctl("backup")
        st.stop_process("agent")
        assert st.ragctl("backup", check=False, timeout=120).returncode != 0
        _status_page_in_chromium(tmp_path, port, "RagBackupJobFailed")
    finally:
        st.stop()
