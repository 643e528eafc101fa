"""`ragctl health`: the pre-recovery assessment; exit 10 when anything is unhealthy."""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, table


def register(sub) -> None:
    p = sub.add_parser(
        "health", help="pre-recovery assessment",
        description="Check, before a recovery or as monitoring: the repository opens, the backup volume has "
                    "at least 10% free, the newest backup is under 25 h old, the [schedule] can meet the "
                    "[objectives] RPO, every agent is reachable, and "
                    "every component answers (Redis PING, Chroma heartbeat, documents readable). Exit 10 "
                    "when any check fails.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    reply = client.call("Health", controller_pb2.ControllerHealthRequest(), timeout=120)
    rows = [{"check": c.name, "ok": c.ok, "detail": c.detail} for c in reply.checks]
    if args.json:
        emit_json({"healthy": reply.healthy, "checks": rows})
    else:
        for r in rows:
            r["status"] = "ok" if r["ok"] else "FAIL"
        print(table(rows, [("status", "STATUS"), ("check", "CHECK"), ("detail", "DETAIL")]))
        print("healthy" if reply.healthy else "UNHEALTHY")
    return 0 if reply.healthy else 10
