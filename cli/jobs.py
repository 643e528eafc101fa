"""`ragctl jobs` and `ragctl job ID`: the controller's job records (table, or --json).

In: the kind and limit to list, or one job id. Out: one row per job (kind, trigger, caller,
times, result, bytes), or one job's every field.
"""
from __future__ import annotations

from google.protobuf.json_format import MessageToDict

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, human_bytes, table

FIELDS = ("id", "kind", "trigger", "caller", "components", "snapshot", "started", "finished", "result",
          "error_class", "error_message", "bytes_read", "bytes_sent", "bytes_added", "files", "summary",
          "repository", "bytes_total")


def register(sub) -> None:
    p = sub.add_parser("jobs", help="list the jobs the controller ran",
                       description="List job records (backup, restore, verify, import, export, catalog-rebuild "
                                   "...), oldest first: trigger, caller, times, result and byte counts.")
    p.add_argument("--kind", default="", help="only jobs of this kind")
    p.add_argument("--limit", type=int, default=0, help="only the newest N jobs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_list)
    p = sub.add_parser("job", help="show one job record", description="Show every field of one job record.")
    p.add_argument("id", type=int, help="job id (see `ragctl jobs`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_show)


def as_dict(info: controller_pb2.JobInfo) -> dict:
    d = {f: getattr(info, f) for f in FIELDS}
    d["components"] = list(info.components)
    if info.HasField("progress"):
        d["progress"] = MessageToDict(info.progress, preserving_proto_field_name=True)
    return d


def run_list(args, client: Client) -> int:
    if args.limit < 0:
        raise errors.UsageError("--limit must be 0 (all) or more")
    reply = client.call("ListJobs", controller_pb2.ListJobsRequest(kind=args.kind, limit=args.limit))
    rows = [as_dict(j) for j in reply.jobs]
    if args.json:
        emit_json(rows)
        return 0
    for r in rows:
        r["sent"] = human_bytes(r["bytes_sent"])
        r["added"] = human_bytes(r["bytes_added"])
        r["error"] = r["error_class"]
    print(table(rows, [("id", "ID"), ("kind", "KIND"), ("trigger", "TRIGGER"), ("started", "STARTED"),
                       ("finished", "FINISHED"), ("result", "RESULT"), ("snapshot", "SNAPSHOT"),
                       ("files", "FILES"), ("sent", "SENT"), ("added", "ADDED"), ("error", "ERROR")]))
    return 0


def run_show(args, client: Client) -> int:
    if args.id < 1:
        raise errors.UsageError(f"job ids start at 1, not {args.id}")
    info = client.call("ShowJob", controller_pb2.ShowJobRequest(id=args.id)).job
    d = as_dict(info)
    if args.json:
        emit_json(d)
        return 0
    for k, v in d.items():
        print(f"{k + ':':15} {','.join(v) if isinstance(v, list) else v}")
    return 0
