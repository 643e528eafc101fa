"""`ragctl catalog rebuild`: reload the controller's catalog and index from the repository."""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, run_job


def register(sub) -> None:
    p = sub.add_parser("catalog", help="catalog maintenance",
                       description="The catalog is a cache of the repository; rebuild it after moving the "
                                   "controller, restoring its state dir, or editing the repository.")
    p.add_argument("action", choices=["rebuild"])
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    result = run_job(client.stream("RebuildCatalog", controller_pb2.RebuildCatalogRequest()))
    print(result.summary)
    return 0
