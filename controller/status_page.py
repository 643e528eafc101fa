"""The controller's status page: one self-contained HTML document (inline CSS and SVG, no script,
no external assets) answering "are we safe?".

In: the status dict (controller/status.py `as_dict`). Out: HTML served on [metrics] listen at / and /status.
"""
from __future__ import annotations

from html import escape

CSS = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.ok{color:#176b2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}.alert{background:#fde8ea}
.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:.9em;color:#555}"""


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _badge(ok: bool, yes: str, no: str) -> str:
    return f'<span class="{"ok" if ok else "bad"}">{escape(yes if ok else no)}</span>'


def _rows(cells: list[list[str]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)


def _components(st: dict) -> str:
    rows = [[escape(c["component"]), escape(c["newest_good_backup"] or "none"), _age(c["age_seconds"]),
             _age(c["rpo_seconds"]), _badge(c["within_rpo"], "within RPO", "RPO breached")] for c in st["components"]]
    return ("<h2>Components</h2><table id=components><tr><th>Component</th><th>Newest good backup</th><th>Age</th>"
            f"<th>RPO</th><th>State</th></tr>{_rows(rows)}</table>")


def _alerts(st: dict) -> str:
    if not st["alerts"]:
        return '<h2>Alerts</h2><p id=alerts class=ok>No alert is firing.</p>'
    rows = [[escape(a["severity"]), escape(a["name"]), escape(a["component"] or "-"), escape(a["summary"])]
            for a in st["alerts"]]
    return ('<h2>Alerts</h2><table id=alerts class=alert><tr><th>Severity</th><th>Alert</th><th>Component or job kind</th>'
            f"<th>Summary</th></tr>{_rows(rows)}</table>")


def _drill_and_volume(st: dict) -> str:
    d, v = st["drill"], st["volume"]
    drill = ("no drill yet" if not d["last"] else
             f'{escape(d["last"])}: {escape(d["result"])} in {_age(d["duration_seconds"])} (RTO {_age(d["rto_seconds"])}) '
             + _badge(d["within_rto"], "within RTO", "not within RTO"))
    free = "unknown" if v["free_ratio"] is None else (
        f'{_bytes(v["free_bytes"])} free of {_bytes(v["size_bytes"])} ({v["free_ratio"]:.1%})')
    return (f"<h2>Restore drill</h2><p id=drill>{drill}</p><h2>Backup volume</h2><p id=volume>{escape(v['path'])}: "
            f"{free}</p><h2>Offsite replication</h2><p>{escape(st['replication']['note'])}</p>")


def _chart(title: str, points: list[tuple[float, bool]], unit: str) -> str:
    """A bar chart (inline SVG): one bar per run, red when it failed."""
    w, h = 360, 120
    if not points:
        return f"<figure><figcaption>{escape(title)}</figcaption><p>no data yet</p></figure>"
    top = max(v for v, _ in points) or 1.0
    bw = w / len(points)
    bars = "".join(
        f'<rect x="{i * bw:.1f}" y="{h - max(1.0, v / top * (h - 10)):.1f}" width="{max(1.0, bw - 1):.1f}" '
        f'height="{max(1.0, v / top * (h - 10)):.1f}" fill="{"#2e7d32" if ok else "#c62828"}"/>'
        for i, (v, ok) in enumerate(points))
    return (f'<figure><svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{escape(title)}">'
            f'<rect width="{w}" height="{h}" fill="#f6f6f6"/>{bars}</svg>'
            f"<figcaption>{escape(title)} (max {top:.4g} {unit})</figcaption></figure>")


def _charts(st: dict) -> str:
    b, d = st["history"]["backups"], st["history"]["drills"]
    return ('<h2>History</h2><div class=charts id=charts>'
            + _chart("Backup size (data held)", [(r["bytes_total"] or r["bytes_read"], r["ok"]) for r in b], "B")
            + _chart("Backup duration", [(r["duration_seconds"], r["ok"]) for r in b], "s")
            + _chart("Backup success (red: failed)", [(1.0, r["ok"]) for r in b], "")
            + _chart("Drill duration (red: failed)", [(r["duration_seconds"], r["ok"]) for r in d], "s")
            + "</div>")


def render(st: dict) -> str:
    verdict = _badge(st["safe"], "SAFE: no alert is firing", f"NOT SAFE: {len(st['alerts'])} alert(s) firing")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>rag-backup status</title>"
            f'<meta http-equiv="refresh" content="60"><style>{CSS}</style></head><body>'
            f"<h1>rag-backup status</h1><p id=verdict>{verdict} &middot; {escape(st['time'])}</p>"
            + _alerts(st) + _components(st) + _drill_and_volume(st) + _charts(st) + "</body></html>")
