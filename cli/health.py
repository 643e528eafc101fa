"""`ragctl health`: the pre-recovery assessment; exit 10 when anything is unhealthy or degraded.

In: the controller's Health reply (checks, and details_json: the verdict and each offsite tier's
reachability, queue and last replication). Out: a table or JSON on stdout, and the exit code.
"""
from __future__ import annotations

import json

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, table

VERDICT_LINES = {
    "healthy": "healthy",
    "degraded": "DEGRADED: an offsite tier is unreachable (local backups and restores are unaffected; "
                "replication catches up when it returns)",
    "unhealthy": "UNHEALTHY",
}


def register(sub) -> None:
    p = sub.add_parser(
        "health", help="pre-recovery assessment",
        description="Check, before a recovery or as monitoring: the repository opens, the backup volume has "
                    "at least 10% free, the newest backup is under 25 h old, the [schedule] can meet the "
                    "[objectives] RPO, every agent is reachable, "
                    "every component answers (Redis PING, Chroma heartbeat, documents readable), and every "
                    "offsite tier is reachable (with its replication queue and last replication). Exit 10 "
                    "when any check fails; the verdict is DEGRADED when only offsite tiers fail.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    reply = client.call("Health", controller_pb2.ControllerHealthRequest(), timeout=120)
    rows = [{"check": c.name, "ok": c.ok, "detail": c.detail} for c in reply.checks]
    details = json.loads(reply.details_json or "{}")
    status = details.get("status") or ("healthy" if reply.healthy else "unhealthy")
    if args.json:
        emit_json({"healthy": reply.healthy, "status": status, "checks": rows, "tiers": details.get("tiers", [])})
    else:
        for r in rows:
            r["status"] = "ok" if r["ok"] else "FAIL"
        print(table(rows, [("status", "STATUS"), ("check", "CHECK"), ("detail", "DETAIL")]))
        print(VERDICT_LINES.get(status, status))
    return 0 if reply.healthy else 10
