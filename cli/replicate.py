"""`ragctl replicate`: copy what each offsite tier lacks now (the controller also does it by itself).

In: --tier, --json. Out: the replicate job's progress and result: per tier, snapshots, packs and
bytes copied. Exit 7 when an endpoint is unreachable (the queue keeps the rest; the controller's
background catch-up retries).
"""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, result_details, run_job
from ragbackup.cli.output import emit_json, human_bytes


def register(sub) -> None:
    p = sub.add_parser("replicate", help="copy snapshots to the offsite tiers now",
                       description="Copy to each offsite tier ([tiers.NAME]) the snapshots it lacks, in the "
                                   "repository's write order (packs, index, keys/config, then the snapshot), "
                                   "each pack checked against the repository's own authentication. The "
                                   "controller does this after every backup and keeps catching up by itself; "
                                   "this runs it now and waits (docs/OFFSITE.md).")
    p.add_argument("--tier", default="", help="only this tier (default: every tier, in feed order)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    result = run_job(client.stream("Replicate", controller_pb2.ReplicateRequest(tier=args.tier)), quiet=args.json)
    d = result_details(result)
    if args.json:
        emit_json(d)
        return 0
    for name, t in d.get("tiers", {}).items():
        print(f"{name} (from {t['feed']}): {t['snapshots']} snapshot(s), {t['packs']} pack(s), "
              f"{human_bytes(t['bytes'])}" + (f", {t['server_side_packs']} copied server-side"
                                              if t.get("server_side_packs") else ""))
    print(result.summary if result else "")
    return 0
