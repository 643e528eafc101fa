"""The controller's gRPC servicer for ragctl: unpack, call the job, stream its events.

In: Controller API calls over the unix socket or mTLS TCP. Out: replies and
JobEvent streams; the work lives in backup.py, restore.py, verify.py, diff.py.
"""
from __future__ import annotations

import json
import logging
import shutil

from ragbackup import errors
from ragbackup.repo.snapshots import totals
from ragbackup.v1 import controller_pb2, controller_pb2_grpc

from ragbackup.controller import events
from ragbackup.controller.backup import manifest_summary, run_backup
from ragbackup.controller.diff import diff_entries
from ragbackup.controller.plan import resolve_snapshot
from ragbackup.controller.restore import run_restore
from ragbackup.controller.state import Controller
from ragbackup.controller.verify import run_verify

log = logging.getLogger("ragbackup.controller")


def caller(context) -> str:
    """Who is calling: the user ragctl reports, with the transport peer."""
    md = dict(context.invocation_metadata() or ())
    return f"{md.get('rag-user', '?')}@{context.peer()}"


class ControllerServicer(controller_pb2_grpc.ControllerServicer):
    def __init__(self, ctl: Controller):
        self.ctl = ctl

    def InitRepository(self, request, context):
        repo = self.ctl.init_repository()
        log.info("repository %s initialised at %s by %s", repo.id, repo.storage.describe(), caller(context))
        return controller_pb2.InitReply(repository=repo.storage.describe(), repository_id=repo.id)

    def Backup(self, request, context):
        yield from run_backup(self.ctl, request, caller(context))

    def ListSnapshots(self, request, context):
        self.ctl.repo()
        out = []
        for r in self.ctl.catalog.list():
            if request.components and not set(request.components) & set(r.components):
                continue
            t = totals(r.manifest)
            out.append(controller_pb2.SnapshotSummary(
                id=r.id, time=r.time, kind=r.kind, reason=r.reason, components=list(r.components),
                files=t["files"], bytes_total=t["bytes_total"], bytes_added=t["bytes_added"], host=r.host))
        return controller_pb2.ListSnapshotsReply(snapshots=out)

    def ShowSnapshot(self, request, context):
        repo = self.ctl.repo()
        sid = resolve_snapshot(request.id or "latest", self.ctl.history(), [])
        return controller_pb2.ShowSnapshotReply(manifest_json=json.dumps(manifest_summary(repo.load_snapshot(sid))))

    def Restore(self, request, context):
        yield from run_restore(self.ctl, request)

    def Verify(self, request, context):
        yield from run_verify(self.ctl.repo(), request.read_data)

    def Diff(self, request, context):
        repo = self.ctl.repo()
        hist = self.ctl.history()
        a = repo.load_snapshot(resolve_snapshot(request.id1, hist, []))
        b = repo.load_snapshot(resolve_snapshot(request.id2, hist, []))
        items = []
        for name in sorted(set(a["components"]) | set(b["components"])):
            old = repo.read_tree(bytes.fromhex(t) for t in a["components"].get(name, {}).get("tree", []))
            new = repo.read_tree(bytes.fromhex(t) for t in b["components"].get(name, {}).get("tree", []))
            for change, path, detail in diff_entries(old, new):
                items.append(controller_pb2.DiffItem(change=change, component=name, path=path, detail=detail))
        return controller_pb2.DiffReply(items=items)

    def RebuildCatalog(self, request, context):
        yield events.log("reloading index and snapshots from the repository")
        n = self.ctl.rebuild_catalog()
        yield events.result(f"catalog rebuilt: {n} snapshots", {"snapshots": n})

    def Health(self, request, context):
        details = {"repository": self.ctl.cfg.repository.path or "s3", "state_dir": self.ctl.state_dir}
        try:
            repo = self.ctl.repo()
            details["repository_ok"] = True
            details["snapshots"] = len(self.ctl.catalog.ids())
            if self.ctl.cfg.repository.type == "local":
                du = shutil.disk_usage(self.ctl.cfg.repository.path)
                details["volume_free_ratio"] = round(du.free / du.total, 4)
            details["repository_id"] = repo.id
        except errors.RagBackupError as exc:
            details["repository_ok"] = False
            details["repository_error"] = exc.message
        return controller_pb2.ControllerHealthReply(healthy=details["repository_ok"],
                                                    details_json=json.dumps(details))


