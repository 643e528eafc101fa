"""`ragctl repair index [--dry-run] [--json]`: rewrite the index from the packs' own headers."""
from __future__ import annotations

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, run_report_job
from ragbackup.cli.output import emit_json


def register(sub) -> None:
    p = sub.add_parser("repair", help="repair repository metadata",
                       description="index: read every index object; describe every stored pack that no "
                                   "readable index object names from the pack's own header, write new index "
                                   "objects naming them, then delete the damaged index objects (new objects "
                                   "are stored before anything is deleted). Exit 6 when a pack's header "
                                   "cannot be read either.")
    p.add_argument("what", choices=["index"])
    p.add_argument("--dry-run", action="store_true", help="report what would be written and deleted")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    summary, d = run_report_job(client.stream("RepairIndex", controller_pb2.RepairIndexRequest(dry_run=args.dry_run)),
                                args.json, errors.IntegrityError)
    if args.json:
        emit_json(d)
    else:
        print(summary)
        for pid, why in sorted(d.get("unreadable_packs", {}).items()):
            print(f"  unreadable pack {pid}: {why}")
    return errors.IntegrityError.exit_code if d.get("unreadable_packs") and not args.dry_run else 0
