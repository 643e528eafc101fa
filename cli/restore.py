"""`ragctl restore ID|latest`: restore components into a directory or in place."""
from __future__ import annotations

import os

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, result_details, run_job
from ragbackup.cli.output import emit_json


def register(sub) -> None:
    p = sub.add_parser(
        "restore", help="restore a snapshot",
        description="Restore components of a snapshot. With --target DIR each component is written to "
                    "DIR/<component> (which must be absent or empty). Without --target the restore is in "
                    "place: the snapshot is written beside the current data, then the current directory is "
                    "renamed NAME.corrupted.YYYYMMDD_HHMMSS (never deleted) and the restored one takes its "
                    "place.")
    p.add_argument("id", help="snapshot id or 'latest'")
    p.add_argument("--components", default="", help="comma-separated names (default: all in the snapshot)")
    p.add_argument("--target", default="", help="restore into this directory instead of in place (a relative "
                                                "path is taken from the current directory)")
    p.add_argument("--dry-run", action="store_true", help="run the same checks as the restore and print its "
                                                          "steps, change nothing; exits as the restore would")
    p.add_argument("--force", action="store_true", help="restore despite version mismatches")
    p.add_argument("--agent", default="", help="agent to restore through, for components no longer (or never) "
                                               "configured, e.g. from `ragctl import`")
    p.add_argument("--from", dest="source", default="local", metavar="TIER",
                   help="read the snapshot from `local` (the primary repository, default) or an offsite tier "
                        "such as `s3` or `dr`: works with the local repository gone (docs/OFFSITE.md)")
    p.add_argument("--as-of", default="", metavar="TIME",
                   help="with --from TIER: read the tier's object versions as of TIME (ISO 8601 with a zone): "
                        "recovery after an attack on a locked tier (docs/OFFSITE.md)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    # The controller runs elsewhere (under systemd in /): a relative target means here.
    target = os.path.abspath(args.target) if args.target else ""
    req = controller_pb2.RestoreRequest(id=args.id, components=[c for c in args.components.split(",") if c],
                                        target=target, dry_run=args.dry_run, force=args.force,
                                        agent=args.agent, source=args.source, as_of=args.as_of)
    result = run_job(client.stream("Restore", req), quiet=args.json)
    d = result_details(result)
    if args.json:
        emit_json(d)
        return 0
    print(result.summary)
    for step in d.get("steps", []):
        print(f"  {step}")
    if d.get("dry_run"):
        return 0
    for name, r in sorted(d.get("components", {}).items()):
        line = f"  {name}: {r['files']} files -> {r['restored_path']}"
        if r.get("moved_aside"):
            line += f" (previous data kept at {r['moved_aside']})"
        print(line)
    return 0
