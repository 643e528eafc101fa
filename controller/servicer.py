"""The controller's gRPC servicer for ragctl: unpack, call the job, stream its events.

In: Controller API calls over the unix socket or mTLS TCP. Out: replies and
JobEvent streams; the work lives in backup.py, restore.py, verify.py, diff.py.
"""
from __future__ import annotations

import itertools
import json
import logging
import threading

from ragbackup.repo.snapshots import totals
from ragbackup.v1 import controller_pb2, controller_pb2_grpc

from ragbackup.controller import events
from ragbackup.controller.audit import Audit
from ragbackup.controller.backup import manifest_summary, run_backup
from ragbackup.controller.catalog import repository_warnings
from ragbackup.controller.diff import diff_entries, env_changes, is_env_file
from ragbackup.controller.health import assess
from ragbackup.controller.plan import resolve_snapshot
from ragbackup.controller.repair import run_repair_index
from ragbackup.controller.restore import run_restore
from ragbackup.controller.runbook_export import export_chunks
from ragbackup.controller.runbook_import import import_upload, upload_request
from ragbackup.controller.state import Controller
from ragbackup.controller.verify import run_verify

log = logging.getLogger("ragbackup.controller")


def caller(context) -> str:
    """Who is calling: the user ragctl reports, with the transport peer."""
    md = dict(context.invocation_metadata() or ())
    return f"{md.get('rag-user', '?')}@{context.peer()}"


def _content(repo, entry) -> bytes:
    """A (small) config file's bytes, for key-level diffs of .env files."""
    return b"".join(repo.read_blob(c) for c in entry.chunks)


def _audited(audit: Audit, action: str, user: str, events, **fields):
    """Pass a job's events through, then write one audit line with its outcome."""
    details: dict = {}
    try:
        for ev in events:
            if ev.WhichOneof("kind") == "result":
                details = json.loads(ev.result.details_json or "{}")
            yield ev
    except Exception as exc:
        audit.record(action, user, "failed", error=type(exc).__name__, **fields)
        raise
    fields["snapshot"] = details.get("id") or details.get("snapshot") or fields.get("snapshot", "-")
    audit.record(action, user, "ok", **fields)


class ControllerServicer(controller_pb2_grpc.ControllerServicer):
    def __init__(self, ctl: Controller, audit: Audit | None = None):
        self.ctl = ctl
        self.audit = audit or Audit()

    def InitRepository(self, request, context):
        repo = self.ctl.init_repository()
        self.audit.record("init", caller(context), "ok", repository=repo.storage.describe(), key="created")
        log.info("repository %s initialised at %s by %s", repo.id, repo.storage.describe(), caller(context))
        return controller_pb2.InitReply(repository=repo.storage.describe(), repository_id=repo.id)

    def Backup(self, request, context):
        user = caller(context)
        yield from _audited(self.audit, "backup", user, run_backup(self.ctl, request, user),
                            components=",".join(request.components) or "all", reason=request.reason or "-")

    def ListSnapshots(self, request, context):
        repo = self.ctl.repo()
        out = []
        for r in self.ctl.catalog.list():
            if request.components and not set(request.components) & set(r.components):
                continue
            t = totals(r.manifest)
            out.append(controller_pb2.SnapshotSummary(
                id=r.id, time=r.time, kind=r.kind, reason=r.reason, components=list(r.components),
                files=t["files"], bytes_total=t["bytes_total"], bytes_added=t["bytes_added"], host=r.host))
        return controller_pb2.ListSnapshotsReply(snapshots=out, warnings=repository_warnings(repo, self.ctl.catalog))

    def ShowSnapshot(self, request, context):
        repo = self.ctl.repo()
        sid = resolve_snapshot(request.id or "latest", self.ctl.history(), [])
        return controller_pb2.ShowSnapshotReply(manifest_json=json.dumps(manifest_summary(repo.load_snapshot(sid))))

    def Restore(self, request, context):
        yield from _audited(self.audit, "restore", caller(context), run_restore(self.ctl, request),
                            snapshot=request.id or "latest", components=",".join(request.components) or "all",
                            target=request.target or "in-place", dry_run=request.dry_run)

    def Verify(self, request, context):
        yield from _audited(self.audit, "verify", caller(context), run_verify(self.ctl.repo(), request.read_data,
                                                                           self.ctl.catalog.vanished()),
                            read_data=request.read_data)

    def Diff(self, request, context):
        repo = self.ctl.repo()
        hist = self.ctl.history()
        a = repo.load_snapshot(resolve_snapshot(request.id1, hist, []))
        b = repo.load_snapshot(resolve_snapshot(request.id2, hist, []))
        items = []
        for name in sorted(set(a["components"]) | set(b["components"])):
            old = repo.read_tree(bytes.fromhex(t) for t in a["components"].get(name, {}).get("tree", []))
            new = repo.read_tree(bytes.fromhex(t) for t in b["components"].get(name, {}).get("tree", []))
            secret = a["components"].get(name, b["components"].get(name, {})).get("kind") == "config"
            for change, path, detail in diff_entries(old, new, keep=secret):
                if secret and change == "M" and is_env_file(path):
                    detail = env_changes(*(_content(repo, e) for e in detail))
                elif isinstance(detail, tuple):
                    detail = "content"
                items.append(controller_pb2.DiffItem(change=change, component=name, path=path, detail=detail))
        return controller_pb2.DiffReply(items=items)

    def RebuildCatalog(self, request, context):
        yield events.log("reloading index and snapshots from the repository")
        for sid in sorted(self.ctl.catalog.vanished()):
            yield events.log(f"forgetting vanished snapshot {sid} (its object is gone from the repository)")
        n = self.ctl.rebuild_catalog()
        for warning in repository_warnings(self.ctl.repo(), self.ctl.catalog):
            yield events.log(f"warning: {warning}")
        yield events.result(f"catalog rebuilt: {n} snapshots", {"snapshots": n})

    def Health(self, request, context):
        checks = assess(self.ctl)
        return controller_pb2.ControllerHealthReply(
            healthy=all(c.ok for c in checks),
            checks=[controller_pb2.HealthCheck(name=c.name, ok=c.ok, detail=c.detail) for c in checks])

    def Export(self, request, context):
        cancel = threading.Event()
        context.add_callback(cancel.set)
        user, ref = caller(context), request.id or "latest"
        try:
            yield from export_chunks(self.ctl, ref, cancel)
        except BaseException as exc:
            self.audit.record("export", user, "failed", snapshot=ref, error=type(exc).__name__)
            raise
        self.audit.record("export", user, "ok", snapshot=ref)

    def Import(self, request_iterator, context):
        first = next(request_iterator, None) or controller_pb2.ImportChunk()
        cancel = threading.Event()
        context.add_callback(cancel.set)
        user = caller(context)
        req = upload_request(first.filename, first.reason, dict(context.invocation_metadata() or ()), user)
        try:
            manifest = import_upload(self.ctl, req, itertools.chain([first.data], (c.data for c in request_iterator)),
                                     cancel)
        except BaseException as exc:
            self.audit.record("import", user, "failed", file=req.filename, error=type(exc).__name__)
            raise
        self.audit.record("import", user, "ok", snapshot=manifest["id"], file=req.filename)
        return controller_pb2.ImportReply(snapshot_id=manifest["id"],
                                          details_json=json.dumps(manifest_summary(manifest)))

    def RepairIndex(self, request, context):
        yield from _audited(self.audit, "repair-index", caller(context),
                            run_repair_index(self.ctl, request.dry_run), dry_run=request.dry_run)
