"""`ragctl init`: create the repository and its key (controller config decides where)."""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client


def register(sub) -> None:
    p = sub.add_parser("init", help="create the repository and its key",
                       description="Create the repository configured in the controller's [repository] "
                                   "table, with a master key wrapped by the configured passphrase "
                                   "(password_file) or key file. Fails if one exists already.")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    reply = client.call("InitRepository", controller_pb2.InitRequest(), timeout=120)
    print(f"created repository {reply.repository_id} at {reply.repository}")
    return 0
