"""`ragctl diff ID1 ID2`: what changed between two snapshots."""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json


def register(sub) -> None:
    p = sub.add_parser("diff", help="compare two snapshots",
                       description="List entries added (+), removed (-), changed in content (M), in "
                                   "metadata only (m) or in type (T) between two snapshots, component by component. For "
                                   ".env files of config components only the names of changed keys are "
                                   "shown, never their values.")
    p.add_argument("id1", metavar="ID1", help="the older snapshot: an id or 'latest'")
    p.add_argument("id2", metavar="ID2", help="the newer snapshot: an id or 'latest'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    reply = client.call("Diff", controller_pb2.DiffRequest(id1=args.id1, id2=args.id2), timeout=600)
    items = [{"change": i.change, "component": i.component, "path": i.path, "detail": i.detail}
             for i in reply.items]
    if args.json:
        emit_json(items)
        return 0
    for i in items:
        print(f"{i['change']} {i['component']}/{i['path']}" + (f"  ({i['detail']})" if i["detail"] else ""))
    print(f"{len(items)} change(s)")
    return 0
