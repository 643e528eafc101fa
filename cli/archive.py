"""`ragctl archive [--tier T] [ID...]`: write the self-contained sets an archive tier lacks.

In: --tier, snapshot ids (default: the first snapshot of each period without a set), --json.
Out: the archive job's result: per tier, each set written (blobs, packs, bytes). Replication
writes them after each backup too (docs/ARCHIVE.md).
"""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, result_details, run_job
from ragbackup.cli.output import emit_json, human_bytes


def register(sub) -> None:
    p = sub.add_parser("archive", help="write archive sets (self-contained snapshots) to archive tiers",
                       description="Copy snapshots into an archive tier (kind = \"archive\") as self-contained "
                                   "sets: each holds the snapshot and every blob it needs, shares nothing "
                                   "with other sets, and may be moved to GLACIER/DEEP_ARCHIVE and expired as a "
                                   "whole by the tier's lifecycle rules (`ragctl lifecycle`). Without ids: the "
                                   "first snapshot of each period ([tiers.NAME.archive] every) that has no set.")
    p.add_argument("ids", nargs="*", help="snapshot ids (default: those the period policy picks)")
    p.add_argument("--tier", default="", help="only this archive tier (default: every archive tier)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    req = controller_pb2.ArchiveRequest(tier=args.tier, ids=args.ids)
    result = run_job(client.stream("Archive", req), quiet=args.json)
    d = result_details(result)
    if args.json:
        emit_json(d)
        return 0
    for name, sets in d.get("tiers", {}).items():
        for s in sets:
            print(f"{name}: {s['sid']}: " + ("already archived" if s["skipped"] else
                                             f"{s['packs']} pack(s), {human_bytes(s['bytes_stored'])}"))
    print(result.summary if result else "")
    return 0
