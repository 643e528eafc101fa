"""`ragctl prune [--dry-run] [--max-repack PCT] [--json]`: reclaim space no snapshot needs; plan first."""
from __future__ import annotations

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, result_details, run_job
from ragbackup.cli.output import emit_json, human_bytes


def _pct(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        raise errors.UsageError(f"--max-repack {text!r}: expected a percentage 0..100")
    return value


def register(sub) -> None:
    p = sub.add_parser("prune", help="delete data no snapshot references",
                       description="Find blobs no snapshot references, delete packs that hold nothing else, "
                                   "repack packs that are mostly garbage and rewrite the index. The plan (packs "
                                   "to delete and repack, bytes reclaimed) is printed first. Backups may run "
                                   "meanwhile; a prune killed at any point is finished by the next one.")
    p.add_argument("--dry-run", action="store_true", help="show the plan only")
    p.add_argument("--max-repack", metavar="PCT", default=None,
                   help="repack a pack when more than PCT %% of it is garbage (0 any garbage, 100 never; "
                        "default: [retention] repack_pct, 50)")
    p.add_argument("--tier", default="", help="prune this offsite tier instead of the primary; `all`: the primary, "
                                              "then each tier's forget (its own retention) and prune (the timer's way)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    req = controller_pb2.PruneRequest(dry_run=args.dry_run, tier=args.tier)
    if args.max_repack is not None:
        req.max_repack = _pct(args.max_repack)
    result = run_job(client.stream("Prune", req), quiet=args.json)
    d = result_details(result)
    if args.json:
        emit_json(d)
        return 0
    if args.tier == "all":
        print(result.summary if result else "")
        return 0
    p = d.get("plan", {})
    print(f"packs: {p.get('packs', 0)} ({human_bytes(p.get('bytes', 0))}) for {p.get('snapshots', 0)} snapshot(s)")
    print(f"  delete {len(p.get('delete_packs', []))} ({human_bytes(p.get('bytes_delete', 0))}), "
          f"repack {len(p.get('repack_packs', []))} ({human_bytes(p.get('bytes_repack', 0))}), "
          f"unindexed {len(p.get('unindexed_packs', []))} ({human_bytes(p.get('bytes_unindexed', 0))})")
    print(f"  reclaims about {human_bytes(p.get('bytes_reclaimed', 0))}")
    print(result.summary if result else "")
    return 0
