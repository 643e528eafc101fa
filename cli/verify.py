"""`ragctl verify [--read-data]`: check the repository; name damage and affected snapshots."""
from __future__ import annotations

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, run_report_job
from ragbackup.cli.output import emit_json


def register(sub) -> None:
    p = sub.add_parser("verify", help="check repository integrity",
                       description="Read and authenticate every key, index and snapshot object; check that "
                                   "every snapshot's blobs are indexed and every indexed pack is stored with "
                                   "its size, and that no snapshot the catalog knew has vanished. --read-data "
                                   "also reads every pack, authenticates its header and every blob and "
                                   "checks each blob's id. Damage is reported by object and by affected "
                                   "snapshot (exit code 6).")
    p.add_argument("--read-data", action="store_true", help="read and authenticate every byte")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    summary, d = run_report_job(client.stream("Verify", controller_pb2.VerifyRequest(read_data=args.read_data)),
                                args.json, errors.IntegrityError)
    if args.json:
        emit_json(d)
    else:
        _print_report(summary, d)
    return 0 if d.get("ok") else errors.IntegrityError.exit_code


def _print_report(summary: str, d: dict) -> None:
    """The verify report for a person: the summary, then each affected snapshot and damaged object."""
    print(summary)
    for sid, reasons in sorted(d.get("affected_snapshots", {}).items()):
        print(f"  affected: {sid}: {'; '.join(reasons)}")
    for pid, why in sorted(d.get("damaged_packs", {}).items()):
        print(f"  damaged pack {pid}: {why}")
    for what in ("damaged_index_objects", "damaged_keys", "vanished_snapshots", "unreadable_snapshots"):
        for name, why in sorted(d.get(what, {}).items()):
            print(f"  {what.replace('_', ' ').rstrip('s')} {name}: {why}")
