"""`ragctl forget [--dry-run] [--json] [IDS...]`: apply the retention policy, or forget named snapshots."""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, result_details, run_job
from ragbackup.cli.output import emit_json, table


def register(sub) -> None:
    p = sub.add_parser("forget", help="forget snapshots by the retention policy (or by id)",
                       description="Apply the controller's [retention] policy (keep_within, keep_last, "
                                   "keep_hourly/daily/weekly/monthly/yearly) or forget the snapshots named. "
                                   "The newest snapshot of every component, the newest that passed a drill and "
                                   "those younger than the RPO are always kept. Only snapshot objects are "
                                   "deleted: run `ragctl prune` to reclaim their data.")
    p.add_argument("ids", nargs="*", metavar="ID", help="snapshots to forget (default: apply the policy)")
    p.add_argument("--dry-run", action="store_true", help="show what would be kept and forgotten; delete nothing")
    p.add_argument("--tier", default="", help="forget on this offsite tier, by its own [tiers.NAME.retention] "
                                              "(default: the primary and [retention])")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    result = run_job(client.stream("Forget", controller_pb2.ForgetRequest(ids=args.ids, dry_run=args.dry_run,
                                                                          tier=args.tier)),
                     quiet=args.json)
    d = result_details(result)
    if args.json:
        emit_json(d)
        return 0
    rows = [{"id": s["id"], "time": s["time"], "verdict": "keep" if s["keep"] else "forget",
             "why": "; ".join(s["reasons"])} for s in d.get("snapshots", [])]
    print(table(rows, [("id", "SNAPSHOT"), ("time", "TIME"), ("verdict", "VERDICT"), ("why", "WHY")]))
    print(result.summary if result else "")
    return 0
