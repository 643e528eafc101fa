"""`ragctl lock maintain [--tier T]`: extend the object lock of every live object of the locked tiers now.

In: --tier, --json. Out: the lock-maintain job's result per tier: live objects, checked, extended.
The controller runs it by itself every [tiers.NAME.object_lock] maintain_every (docs/OFFSITE.md).
"""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, result_details, run_job
from ragbackup.cli.output import emit_json


def register(sub) -> None:
    p = sub.add_parser("lock", help="object lock maintenance of locked tiers",
                       description="Extend the retention of every live object (the current version of each key) "
                                   "of the tiers with [tiers.NAME.object_lock] whose lock has less than "
                                   "extend_within left, to now + days. The controller does this every "
                                   "maintain_every by itself; this runs it now.")
    p.add_argument("action", choices=("maintain",))
    p.add_argument("--tier", default="", help="only this tier (default: every locked tier)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    result = run_job(client.stream("MaintainLocks", controller_pb2.MaintainLocksRequest(tier=args.tier)),
                     quiet=args.json)
    d = result_details(result)
    if args.json:
        emit_json(d)
        return 0
    for name, t in d.get("tiers", {}).items():
        print(f"{name}: {t['live']} live object(s), {t['checked']} checked, {t['extended']} extended")
    return 0
