"""`ragctl init`: create the repository and its key (controller config decides where)."""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client


def register(sub) -> None:
    p = sub.add_parser("init", help="create the repository and its key",
                       description="Create the repository configured in the controller's [repository] "
                                   "table, with a master key wrapped by the configured passphrase "
                                   "(password_file) or key file. Fails if one exists already. With --tier, "
                                   "create that offsite tier's bucket instead: versioned, and with S3 object "
                                   "lock enabled when [tiers.NAME.object_lock] is set (S3 cannot enable it on "
                                   "an existing bucket; a locked tier on a bucket without it is exit 3).")
    p.add_argument("--tier", default="", help="create this offsite tier's bucket (docs/OFFSITE.md)")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    if args.tier:
        t = client.call("InitTier", controller_pb2.InitTierRequest(tier=args.tier), timeout=120)
        print(f"tier {args.tier}: bucket {t.location} {'created' if t.created else 'exists'}; object lock "
              f"{'on' if t.object_lock else 'off'}, versioning {'on' if t.versioning else 'off'}")
        return 0
    reply = client.call("InitRepository", controller_pb2.InitRequest(), timeout=120)
    print(f"created repository {reply.repository_id} at {reply.repository}")
    return 0
