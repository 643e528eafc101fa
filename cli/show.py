"""`ragctl show ID`: one snapshot's manifest (components, stats, facts)."""
from __future__ import annotations

import json

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, human_bytes


def register(sub) -> None:
    p = sub.add_parser("show", help="show one snapshot",
                       description="Show a snapshot's manifest: components, sizes, facts.")
    p.add_argument("id", help="snapshot id or 'latest'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    m = json.loads(client.call("ShowSnapshot", controller_pb2.ShowSnapshotRequest(id=args.id)).manifest_json)
    if args.json:
        emit_json(m)
        return 0
    print(f"snapshot {m['id']}  {m['time']}  {m['kind']}  reason={m['reason']}  host={m['host']}")
    for name, c in sorted(m["components"].items()):
        s = c["stats"]
        print(f"  {name} ({c['kind']} on agent {c.get('agent') or '-'}, {c.get('path') or '-'}): {s.get('files', 0)} files, "
              f"{s.get('dirs', 0)} dirs, {human_bytes(s.get('bytes_total', 0))}")
        for k, v in sorted(c.get("facts", {}).items()):
            print(f"    {k}: {json.dumps(v)[:200]}")
    return 0
