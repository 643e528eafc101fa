"""`ragctl drill [ID|latest]`: restore a snapshot into scratch space on an agent, start it and check it.

In: a snapshot reference, --agent, --from, --json. Out: the verdict (SUCCESSFUL, FAILED,
TIMED_OUT), the duration against the RTO, the recovery point's age, each check per
component; exit 0 when SUCCESSFUL, 11 when the drill FAILED or TIMED_OUT.
"""
from __future__ import annotations

import sys

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, run_report_job
from ragbackup.cli.output import emit_json


def register(sub) -> None:
    p = sub.add_parser(
        "drill", help="prove a snapshot restores: restore, start and check it in scratch space",
        description="Restore a snapshot into a fresh scratch directory on an agent (nothing live is touched), "
                    "load Redis data into a throwaway redis-server and Chroma data into a throwaway "
                    "`chroma run` on free loopback ports, run PRAGMA quick_check, compare DBSIZE per db, "
                    "collection counts and probe queries' top-k ids with the snapshot's facts (every file's "
                    "content is checked against its chunk ids as it is written), time the whole drill "
                    "against the RTO ([objectives] rto, default 1h) and remove everything. The result "
                    "(SUCCESSFUL, FAILED or TIMED_OUT, with the recovery point's age as the achieved RPO) "
                    "is kept as a `drill` job record (`ragctl jobs --kind drill`) and an audit event.")
    p.add_argument("id", nargs="?", default="latest", help="snapshot id or 'latest' (default)")
    p.add_argument("--agent", default="", help="drill every component on this agent (default: each "
                                               "component's own agent)")
    p.add_argument("--from", dest="source", default="local", metavar="TIER",
                   help="where to read the snapshot from: `local` (the primary repository, default) or an "
                        "offsite tier of the controller config such as `s3` or `dr` (docs/OFFSITE.md)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    req = controller_pb2.DrillRequest(id=args.id, agent=args.agent, source=args.source)
    summary, d = run_report_job(client.stream("Drill", req), args.json, errors.VerificationFailed)
    if args.json:
        emit_json(d)
    else:
        _print(summary, d)
    if d.get("result") == "SUCCESSFUL":
        return 0
    print(f"ragctl: error: {summary or 'the drill ended without a result'}", file=sys.stderr)
    return errors.VerificationFailed.exit_code


def _print(summary: str, d: dict) -> None:
    print(summary)
    for name, comp in sorted(d.get("components", {}).items()):
        print(f"  {name} (agent {comp.get('agent', '?')}):")
        for c in comp.get("checks", []):
            print(f"    {'ok    ' if c['ok'] else 'FAILED'} {c['name']}: {c['detail']}")
