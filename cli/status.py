"""`ragctl status`: one screen answering "are we safe?"; exit 10 while an alert fires.

In: nothing (or --json). Out: per component the newest good backup and its age against the RPO,
the next scheduled run, the last drill against the RTO, active alerts, the thresholds and the backup
volume's space, from the controller's Status call.
"""
from __future__ import annotations

import json

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, human_bytes, table

ALERT_EXIT = 10  # the exit code of `ragctl health` when unhealthy


def register(sub) -> None:
    p = sub.add_parser(
        "status", help='"are we safe?": backups vs RPO, drills vs RTO, alerts, space',
        description="Show per component the newest good backup and its age against the RPO, the next "
                    "scheduled run, the last restore drill against the RTO, the alerts firing now (with "
                    "their thresholds from [alerts]) and the backup volume's free space. Exit 10 while any "
                    "alert fires (for scripts).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return f"{seconds / 60:.0f}m" if seconds < 3600 else f"{seconds / 3600:.1f}h"


def render(st: dict) -> str:
    lines = [("SAFE: no alert is firing" if st["safe"] else f"NOT SAFE: {len(st['alerts'])} alert(s) firing"), ""]
    rows = [{**c, "age": _age(c["age_seconds"]), "rpo": _age(c["rpo_seconds"]),
             "state": "ok" if c["within_rpo"] else "OVER RPO", "next": c["next_run"] or "-",
             "newest": c["newest_good_backup"] or "none",
             "proven": _age(c.get("drill_verified_age_seconds"))} for c in st["components"]]
    lines.append(table(rows, [("component", "COMPONENT"), ("newest", "NEWEST GOOD BACKUP"), ("age", "AGE"),
                              ("proven", "DRILL-PROVEN AGE"), ("rpo", "RPO"), ("state", "STATE"),
                              ("next", "NEXT RUN")]))
    d = st["drill"]
    lines += ["", "last drill: " + ("no drill yet" if not d["last"] else
              f"{d['last']} {d['result']} in {_age(d['duration_seconds'])} (RTO {_age(d['rto_seconds'])}"
              f"{', within' if d['within_rto'] else ', NOT within'})")]
    v = st["volume"]
    if v["free_ratio"] is not None:
        lines.append(f"backup volume: {v['path']}: {human_bytes(v['free_bytes'])} free of "
                     f"{human_bytes(v['size_bytes'])} ({v['free_ratio']:.1%})")
    lines.append(f"replication: {st['replication']['note']}")
    for t in st["replication"].get("tiers", []):
        lines.append(f"  {t['tier']} (from {t['feed']}): {t['queue_depth']} waiting"
                     + (f", oldest {_age(t['oldest_age_seconds'])}" if t["queue_depth"] else "")
                     + (f", last copy {t['last_done']}" if t["last_done"] else ", nothing copied yet")
                     + (f"; last error: {t['last_error']}" if t["last_error"] and t["queue_depth"] else ""))
    lines += ["", "alerts:" if st["alerts"] else "alerts: none"]
    lines += [f"  {a['severity'].upper():8} {a['name']}: {a['summary']}" for a in st["alerts"]]
    t = st["thresholds"]
    lines.append("thresholds: " + ", ".join(f"{k}={v:g}" for k, v in sorted(t.items())))
    return "\n".join(lines)


def run(args, client: Client) -> int:
    reply = client.call("Status", controller_pb2.StatusRequest(), timeout=60)
    st = json.loads(reply.status_json)
    if args.json:
        emit_json(st)
    else:
        print(render(st))
    return 0 if reply.safe else ALERT_EXIT
