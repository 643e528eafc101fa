"""`ragctl health`: the controller's view of the repository (more checks per component later)."""
from __future__ import annotations

import json

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json


def register(sub) -> None:
    p = sub.add_parser("health", help="pre-recovery assessment",
                       description="Report whether the repository opens and how much space is left; "
                                   "exit 10 when unhealthy.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    reply = client.call("Health", controller_pb2.ControllerHealthRequest())
    d = json.loads(reply.details_json)
    d["healthy"] = reply.healthy
    if args.json:
        emit_json(d)
    else:
        for k, v in sorted(d.items()):
            print(f"{k}: {v}")
    return 0 if reply.healthy else 10
