"""`ragctl backup`: back up components now (full, incremental, or as the schedule decides)."""
from __future__ import annotations

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client, result_details, run_job
from ragbackup.cli.output import emit_json, human_bytes


def register(sub) -> None:
    p = sub.add_parser("backup", help="back up components now",
                       description="Capture components through their agents into the repository and write "
                                   "one snapshot. Unchanged files are not re-read (incremental); --full "
                                   "re-reads and re-hashes everything. Without --full/--incremental the "
                                   "controller decides (full when the last full is older than 24 h). "
                                   "--scheduled (what the timers run) asks the controller's [schedule] "
                                   "what is due per component: full, incremental, or nothing (a job "
                                   "is running, or a backup was made within min_gap). --reason deploy "
                                   "backups arriving in a burst are coalesced into one.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="re-read every file")
    mode.add_argument("--incremental", action="store_true", help="reuse unchanged files' chunk lists")
    p.add_argument("--scheduled", action="store_true", help="run as the timers do: the controller's [schedule] decides what is due")
    p.add_argument("--components", default="", help="comma-separated component names (default: all)")
    p.add_argument("--reason", default="", help="free text recorded in the snapshot (e.g. deploy)")
    p.add_argument("--json", action="store_true", help="print the snapshot summary as JSON")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    mode = (controller_pb2.BACKUP_MODE_FULL if args.full else
            controller_pb2.BACKUP_MODE_INCREMENTAL if args.incremental else controller_pb2.BACKUP_MODE_UNSPECIFIED)
    req = controller_pb2.BackupRequest(mode=mode, components=[c for c in args.components.split(",") if c],
                                       reason=args.reason, scheduled=args.scheduled)
    result = run_job(client.stream("Backup", req), quiet=args.json)
    d = result_details(result)
    if args.json:
        emit_json(d)
        return 0
    if "schedule" in d:  # --scheduled: the controller's decision and the snapshots it made
        _print_schedule(d["schedule"])
        for snap in d["snapshots"]:
            _print_snapshot(snap)
        return 0
    _print_snapshot(d)
    return 0


def _print_schedule(decision: dict) -> None:
    for kind in ("full", "incremental"):
        if decision[kind]:
            print(f"due {kind}: {', '.join(decision[kind])}")
    for name, why in sorted(decision["skipped"].items()):
        print(f"skipped {name}: {why}")
    for note in decision["notes"]:
        print(note)
    if not decision["full"] and not decision["incremental"]:
        print("nothing due")


def _print_snapshot(d: dict) -> None:
    s = d["stats"]
    print(f"snapshot {d['id']} ({d['kind']}) in {d['duration_s']:.1f}s")
    print(f"  data {human_bytes(s['bytes_total'])}, read {human_bytes(s['bytes_read'])}, "
          f"sent {human_bytes(s['bytes_sent'])}, added to repository {human_bytes(s['bytes_stored'])}")
    for name, c in sorted(d["components"].items()):
        cs = c["stats"]
        print(f"  {name}: {cs.get('files', 0)} files, {human_bytes(cs.get('bytes_total', 0))}, "
              f"{cs.get('files_reused', 0)} unchanged (not read)")
