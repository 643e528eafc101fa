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
    p.add_argument("--as-of", default="", metavar="TIME",
                   help="with --tier: the tier's object versions as of TIME (ISO 8601 with a zone), e.g. after "
                        "an attack overwrote or deleted objects of a locked tier")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    reply = client.call("ListSnapshots", controller_pb2.ListSnapshotsRequest(
        components=[c for c in args.components.split(",") if c], tier=args.tier, as_of=args.as_of))
    rows = [{"id": s.id, "time": s.time, "kind": s.kind, "reason": s.reason, "components": list(s.components),
             "files": s.files, "bytes_total": s.bytes_total, "bytes_added": s.bytes_added, "host": s.host}
            for s in reply.snapshots]
    times = {t.snapshot: t for t in reply.restore_times}
    for r in rows:
        t = times.get(r["id"])
        if t is not None:
            r.update(storage_classes=list(t.storage_classes), restore_wait=t.wait, restore_wait_max_s=t.wait_max_s,
                     slower_than_rto=t.slower_than_rto)
    for warning in reply.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        emit_json(rows)
        return 0
    for r in rows:
        r["components"] = ",".join(r["components"])
        r["size"] = human_bytes(r["bytes_total"])
        r["added"] = human_bytes(r["bytes_added"])
    cols = [("id", "ID"), ("time", "TIME"), ("kind", "KIND"), ("components", "COMPONENTS"),
            ("files", "FILES"), ("size", "SIZE"), ("added", "ADDED"), ("reason", "REASON")]
    if times:
        for r in rows:
            slow = r.get("slower_than_rto")
            r["restore"] = f"{r.get('restore_wait', '?')}{' > RTO' if slow else ''}"
        cols.insert(5, ("restore", "RESTORE WAIT"))
    print(table(rows, cols))
    slow = [r["id"] for r in rows if r.get("slower_than_rto")]
    if slow:
        print(f"{len(slow)} snapshot(s) on tier {args.tier} cannot be restored within the RTO of "
              f"{reply.rto_s / 3600:g} h: their packs are in an archive class (docs/ARCHIVE.md)", file=sys.stderr)
    return 0
