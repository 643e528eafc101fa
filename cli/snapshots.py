"""`ragctl snapshots`: list snapshots (table, or --json)."""
from __future__ import annotations

import sys

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, human_bytes, table


def register(sub) -> None:
    p = sub.add_parser("snapshots", help="list snapshots",
                       description="List the repository's snapshots, oldest first.")
    p.add_argument("--components", default="", help="only snapshots holding one of these components")
    p.add_argument("--tier", default="", help="list from this offsite tier itself (default: the primary)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    reply = client.call("ListSnapshots", controller_pb2.ListSnapshotsRequest(
        components=[c for c in args.components.split(",") if c], tier=args.tier))
    rows = [{"id": s.id, "time": s.time, "kind": s.kind, "reason": s.reason, "components": list(s.components),
             "files": s.files, "bytes_total": s.bytes_total, "bytes_added": s.bytes_added, "host": s.host}
            for s in reply.snapshots]
    for warning in reply.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        emit_json(rows)
        return 0
    for r in rows:
        r["components"] = ",".join(r["components"])
        r["size"] = human_bytes(r["bytes_total"])
        r["added"] = human_bytes(r["bytes_added"])
    print(table(rows, [("id", "ID"), ("time", "TIME"), ("kind", "KIND"), ("components", "COMPONENTS"),
                       ("files", "FILES"), ("size", "SIZE"), ("added", "ADDED"), ("reason", "REASON")]))
    return 0
