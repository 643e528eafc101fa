"""The controller's gRPC servicer for ragctl: unpack, call the job, stream its events.

In: Controller API calls over the unix socket or mTLS TCP. Out: replies and
JobEvent streams; every job runs through the runner (jobs/), queries read the catalog.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import threading
from typing import Callable

from ragbackup import errors
from ragbackup.v1 import controller_pb2, controller_pb2_grpc

from ragbackup.controller.audit import Caller
from ragbackup.controller.catalog import repository_warnings
from ragbackup.controller import events
from ragbackup.controller.policy.diff import diff_entries, env_changes, is_env_file
from ragbackup.controller.health import assess
from ragbackup.controller.policy.plan import resolve_snapshot
from ragbackup.controller.jobs import backup as backup_job
from ragbackup.controller.jobs import catalog as catalog_job
from ragbackup.controller.jobs import drill as drill_job
from ragbackup.controller.jobs import export as export_job
from ragbackup.controller.jobs import forget as forget_job
from ragbackup.controller.jobs import import_ as import_job
from ragbackup.controller.jobs import repair as repair_job
from ragbackup.controller.jobs import prune as prune_job
from ragbackup.controller.jobs import replicate as replicate_job
from ragbackup.controller.jobs import archive as archive_job
from ragbackup.controller.jobs import lockkeep as lockkeep_job
from ragbackup.controller import archive_tier, asof, lifecycle, offsite_extra
from ragbackup.controller.jobs import restore as restore_job
from ragbackup.controller.jobs import scheduled
from ragbackup.controller.jobs import verify as verify_job
from ragbackup.controller.jobs.records import TRIGGERS, JobRecord
from ragbackup.controller.jobs.runner import KINDS, Job, JobContext, Runner
from ragbackup.controller.peercred import parse_peer
from ragbackup.controller.runbook_import import upload_request
from ragbackup.controller.repositories import PRIMARY
from ragbackup.controller.state import Controller
from ragbackup.controller import status

log = logging.getLogger("ragbackup.controller")


def caller(context) -> Caller:
    """Who is calling, from the kernel (the relay's peer address) or the client certificate's name;
    what ragctl reports (rag-user) is kept only as `claimed`."""
    claimed = dict(context.invocation_metadata() or ()).get("rag-user", "")
    who = parse_peer(context.peer(), claimed)
    names = (context.auth_context() or {}).get("x509_common_name") or []
    if names:
        return dataclasses.replace(who, transport="tls", cert_name=names[0].decode(errors="replace"))
    return who


TRIGGER_KEY = "rag-trigger"  # request metadata: what started the call (manual, timer, path, api)


def trigger(context, scheduled: bool = False) -> str:
    """What started the job: ragctl's rag-trigger metadata, `timer` for a scheduled backup, else
    `manual` for ragctl and `api` for other clients."""
    md = dict(context.invocation_metadata() or ())
    said = md.get(TRIGGER_KEY, "")
    if said in TRIGGERS:
        return said
    if scheduled:
        return "timer"
    return "manual" if "rag-user" in md else "api"


def _cancel_event(context) -> threading.Event:
    """Set when the call ends early (ragctl gone or the deadline passed)."""
    cancel = threading.Event()
    context.add_callback(cancel.set)
    return cancel


def _content(repo, entry) -> bytes:
    """A (small) config file's bytes, for key-level diffs of .env files."""
    return b"".join(repo.read_blob(c) for c in entry.chunks)


ALL_TIERS = "all"  # PruneRequest.tier: the primary and every offsite tier (the prune timer)


def _retention_locks(tier: str) -> tuple[str, ...]:
    """Forget and prune of the primary never interleave; of a tier, never beside its replication either."""
    return forget_job.LOCKS if tier == PRIMARY else (*forget_job.LOCKS, replicate_job.lock_name(tier))


def job_info(rec: JobRecord, running: JobContext | None = None) -> controller_pb2.JobInfo:
    d = rec.as_dict()
    info = controller_pb2.JobInfo(**d)
    if running is not None:
        p = running.latest
        info.progress.CopyFrom(controller_pb2.Progress(phase=p.phase, done=p.done, total=p.total, unit=p.unit))
    return info


class ControllerServicer(controller_pb2_grpc.ControllerServicer):
    """The controller's RPCs. `tier_back(name)`, when given, hears of each tier a health probe finds
    answering while snapshots wait for it (the replicator then retries without waiting out its backoff)."""

    def __init__(self, ctl: Controller, runner: Runner, tier_back: Callable[[str], None] | None = None):
        self.ctl = ctl
        self.tier_back = tier_back
        self.runner = runner
        self.audit = runner.audit
        self.deploys = scheduled.DeployCoalescer()

    def _job(self, kind: str, context, **kw) -> Job:
        return Job(kind, trigger=trigger(context, kw.pop("scheduled", False)), caller=caller(context), **kw)

    def InitRepository(self, request, context):
        who = caller(context)
        repo = self.ctl.init_repository()
        self.audit.record("init", who, "ok", repository=repo.storage.describe(), key="created")
        log.info("repository %s initialised at %s by %s", repo.id, repo.storage.describe(), who)
        return controller_pb2.InitReply(repository=repo.storage.describe(), repository_id=repo.id)

    def Backup(self, request, context):
        cancel = _cancel_event(context)
        if request.scheduled:  # a timer: the schedule policy decides what is due
            yield from scheduled.run(self.runner, lambda req: self._backup_job(req, context), request, cancel,
                                     caller(context))
            yield from self._after_backup(context)
            return
        run = lambda: self.runner.stream(self._backup_job(request, context),  # noqa: E731
                                         lambda ctx: backup_job.run(ctx, request), cancel)
        key = scheduled.deploy_key(request)
        if key is None:
            yield from run()
        else:
            window = self.ctl.cfg.schedule.deploy_debounce.total_seconds()
            yield from self.deploys.run(key, window, run)

    def _backup_job(self, request, context) -> Job:
        return self._job("backup", context, scheduled=request.scheduled, components=tuple(request.components),
                         audit={"components": ",".join(request.components) or "all", "reason": request.reason or "-"})

    def ListSnapshots(self, request, context):
        # One listing of snapshots/ (the primary's, or the tier's own): added, vanished; the index is not re-read.
        name = self.ctl.source(request.tier)
        if archive_tier.is_archive(self.ctl, name) and not request.as_of:
            return archive_tier.list_sets(self.ctl, name)  # self-contained sets, each with its restore time
        if request.as_of:
            name = asof.view(self.ctl, name, request.as_of)
        repo, catalog = self.ctl.synced(name)  # RepositoryNotFound before `ragctl init`
        out = []
        for r in catalog.list():
            if request.components and not set(request.components) & set(r.components):
                continue
            t = r.manifest.totals()
            out.append(controller_pb2.SnapshotSummary(
                id=r.id, time=r.time, kind=r.kind, reason=r.reason, components=list(r.components),
                files=t["files"], bytes_total=t["bytes_total"], bytes_added=t["bytes_added"], host=r.host))
        reply = controller_pb2.ListSnapshotsReply(snapshots=out, warnings=repository_warnings(repo, catalog))
        if name != PRIMARY and not request.as_of:
            reply.restore_times.extend(archive_tier.copy_tier_times(self.ctl, name, [s.id for s in out]))
            reply.rto_s = archive_tier.rto(self.ctl).total_seconds()
        return reply

    def ShowSnapshot(self, request, context):
        self.ctl.refresh_unknown(request.id)
        repo = self.ctl.repo()
        sid = resolve_snapshot(request.id or "latest", self.ctl.history(), [])
        return controller_pb2.ShowSnapshotReply(manifest_json=json.dumps(repo.load_manifest(sid).summary()))

    def Restore(self, request, context):
        source = self.ctl.source(request.source)
        if source == PRIMARY:
            self.ctl.refresh_unknown(request.id)
        job = self._job("restore", context, components=tuple(request.components), snapshot=request.id,
                        repository=source,
                        audit={"snapshot": request.id or "latest", "source": request.source or "local",
                               "components": ",".join(request.components) or "all",
                               "target": request.target or "in-place", "dry_run": request.dry_run})
        yield from self.runner.stream(job, lambda ctx: restore_job.run(ctx, request), _cancel_event(context))

    def Verify(self, request, context):
        job = self._job("verify", context, audit={"read_data": request.read_data})
        yield from self.runner.stream(job, lambda ctx: verify_job.run(ctx, request), _cancel_event(context))

    def Diff(self, request, context):
        self.ctl.refresh_unknown(request.id1, request.id2)
        repo = self.ctl.repo()
        hist = self.ctl.history()
        a = repo.load_manifest(resolve_snapshot(request.id1, hist, []))
        b = repo.load_manifest(resolve_snapshot(request.id2, hist, []))
        items = []
        for name in sorted(set(a.components) | set(b.components)):
            ca, cb = a.components.get(name), b.components.get(name)
            old = repo.read_tree(ca.tree_ids() if ca else [])
            new = repo.read_tree(cb.tree_ids() if cb else [])
            secret = (ca or cb).kind == "config"
            for change, path, detail in diff_entries(old, new, keep=secret):
                if secret and change == "M" and is_env_file(path):
                    detail = env_changes(*(_content(repo, e) for e in detail))
                elif isinstance(detail, tuple):
                    detail = "content"
                items.append(controller_pb2.DiffItem(change=change, component=name, path=path, detail=detail))
        return controller_pb2.DiffReply(items=items)

    def RebuildCatalog(self, request, context):
        yield from self.runner.stream(self._job("catalog-rebuild", context), catalog_job.run, _cancel_event(context))

    def Health(self, request, context):
        checks, details = assess(self.ctl)
        for row in details["tiers"]:
            if self.tier_back and row["reachable"] and row["queue_depth"]:
                self.tier_back(row["tier"])
        return controller_pb2.ControllerHealthReply(
            healthy=all(c.ok for c in checks), details_json=json.dumps(details),
            checks=[controller_pb2.HealthCheck(name=c.name, ok=c.ok, detail=c.detail) for c in checks])

    def Export(self, request, context):
        self.ctl.refresh_unknown(request.id)
        ref = request.id or "latest"
        job = self._job("export", context, snapshot=request.id, audit={"snapshot": ref})
        yield from self.runner.stream(job, lambda ctx: export_job.run(ctx, ref), _cancel_event(context))

    def Import(self, request_iterator, context):
        first = next(request_iterator, None) or controller_pb2.ImportChunk()
        cancel = _cancel_event(context)
        req = upload_request(first.filename, first.reason, dict(context.invocation_metadata() or ()),
                             str(caller(context)))
        data = itertools.chain([first.data], (c.data for c in request_iterator))
        job = self._job("import", context, audit={"file": req.filename})
        manifest = self.runner.call(job, lambda ctx: import_job.run(ctx, req, data), cancel)
        return controller_pb2.ImportReply(snapshot_id=manifest.id, details_json=json.dumps(manifest.summary()))

    def ListJobs(self, request, context):
        if request.kind and request.kind not in KINDS:
            raise errors.UsageError(f"unknown job kind {request.kind!r} (kinds: {', '.join(KINDS)})")
        recs = self.runner.records.list(request.kind, request.limit)
        return controller_pb2.ListJobsReply(jobs=[job_info(r, self.runner.running(r.id)) for r in recs])

    def Status(self, request, context):
        st = status.as_dict(status.gather(self.ctl.cfg, self.runner.records, self.runner.clock.now()))
        return controller_pb2.StatusReply(status_json=json.dumps(st), safe=st["safe"])

    def ShowJob(self, request, context):
        rec = self.runner.records.get(request.id)
        if rec is None:
            raise errors.NotFound(f"no job {request.id} (see `ragctl jobs`)")
        return controller_pb2.ShowJobReply(job=job_info(rec, self.runner.running(rec.id)))

    def RepairIndex(self, request, context):
        job = self._job("repair-index", context, audit={"dry_run": request.dry_run})
        yield from self.runner.stream(job, lambda ctx: repair_job.run(ctx, request), _cancel_event(context))

    def Drill(self, request, context):
        source = archive_tier.not_archive(self.ctl, self.ctl.source(request.source), "drill")
        if source == PRIMARY:
            self.ctl.refresh_unknown(request.id)
        job = self._job("drill", context, snapshot=request.id, repository=source,
                        audit={"snapshot": request.id or "latest", "agent": request.agent or "-",
                               "source": request.source or "local"})
        yield from self.runner.stream(job, lambda ctx: drill_job.run(ctx, request, self.audit), _cancel_event(context))

    # --- retention: forget and prune (jobs/forget.py, jobs/prune.py) ----------------------

    def Forget(self, request, context):
        tier = archive_tier.not_archive(self.ctl, self.ctl.source(request.tier), "forget")
        job = self._job("forget", context, locks=_retention_locks(tier), repository=tier,
                        audit={"ids": ",".join(request.ids) or "policy", "dry_run": request.dry_run, "tier": tier})
        yield from self.runner.stream(job, lambda ctx: forget_job.run(ctx, request), _cancel_event(context))

    def Prune(self, request, context):
        if request.tier == ALL_TIERS:
            yield from self._prune_every_tier(request, context)
            return
        tier = archive_tier.not_archive(self.ctl, self.ctl.source(request.tier), "prune")
        job = self._job("prune", context, locks=_retention_locks(tier), repository=tier,
                        audit={"dry_run": request.dry_run, "tier": tier})
        yield from self.runner.stream(job, lambda ctx: prune_job.run(ctx, request), _cancel_event(context))

    def _prune_every_tier(self, request, context):
        """`ragctl prune --tier all` (the prune timer): the primary, then each tier's forget (its own policy)
        and prune, each its own job; a tier's failure is a log line, the next tier still runs."""
        steps = [(PRIMARY, "prune")] + [(t, kind) for t in self.ctl.cfg.tiers for kind in ("forget", "prune")
                                        if not archive_tier.is_archive(self.ctl, t)]  # sets expire by lifecycle
        failed = []
        for tier, kind in steps:
            body = forget_job.run if kind == "forget" else prune_job.run
            req = (controller_pb2.ForgetRequest(dry_run=request.dry_run) if kind == "forget" else
                   controller_pb2.PruneRequest(dry_run=request.dry_run, tier=tier))
            job = self._job(kind, context, locks=_retention_locks(tier), repository=tier,
                            audit={"dry_run": request.dry_run, "tier": tier})
            try:
                for ev in self.runner.stream(job, lambda ctx, body=body, req=req: body(ctx, req),
                                             _cancel_event(context)):
                    is_result = ev.WhichOneof("kind") == "result"
                    yield events.log(f"{tier} {kind}: {ev.result.summary}") if is_result else ev
            except errors.RagBackupError as exc:
                failed.append(f"{tier} {kind}: {exc.message}")
                yield events.log(f"{tier} {kind} failed: {exc.message}")
        if failed:
            raise errors.RagBackupError("; ".join(failed))
        yield events.result(f"pruned the primary and {len(self.ctl.cfg.tiers)} tier(s)", {"steps": len(steps)})

    def Replicate(self, request, context):
        replicate_job.tier_order(self.ctl.cfg, request.tier)  # UsageError for an unknown tier before any job
        job = self._job("replicate", context, audit={"tier": request.tier or "all"})
        yield from self.runner.stream(job, lambda ctx: replicate_job.run(ctx, request), _cancel_event(context))

    # --- object lock, archive tiers, lifecycle, import from S3 (offsite_extra.py) -----------

    def InitTier(self, request, context):
        return offsite_extra.init_tier(self.ctl, request, caller(context), self.audit)

    def MaintainLocks(self, request, context):
        lockkeep_job.locked_tiers(self.ctl.cfg, request.tier)  # UsageError before any job
        job = self._job("lock-maintain", context, audit={"tier": request.tier or "all"})
        yield from self.runner.stream(job, lambda ctx: lockkeep_job.run(ctx, request.tier), _cancel_event(context))

    def Archive(self, request, context):
        archive_job.archive_tiers(self.ctl.cfg, request.tier)
        job = self._job("archive", context, audit={"tier": request.tier or "all", "ids": ",".join(request.ids) or "due"})
        yield from self.runner.stream(job, lambda ctx: archive_job.run(ctx, request), _cancel_event(context))

    def Lifecycle(self, request, context):
        tier = offsite_extra.tier_named(self.ctl, request.tier)
        if not request.apply:
            return lifecycle.run(tier, request)
        job = self._job("lifecycle", context, audit={"tier": tier.name, "rules": "file" if request.rules_json else "generated"})
        return self.runner.call(job, lambda ctx: lifecycle.run(tier, request))

    def ImportS3(self, request, context):
        req = offsite_extra.import_request(self.ctl, request, caller(context))
        job = self._job("import", context, audit={"file": request.url})
        manifest = self.runner.call(job, lambda ctx: offsite_extra.import_s3(ctx, request, req), _cancel_event(context))
        return controller_pb2.ImportReply(snapshot_id=manifest.id, details_json=json.dumps(manifest.summary()))

    def _after_backup(self, context):
        """[retention] forget_after_backup / prune_after_backup: each its own job, after a scheduled backup
        that succeeded. Their results reach ragctl as log lines (the backup's result stays the stream's
        result); a failure (say a busy lock: a prune already running) is a log line, not the backup's.
        """
        r = self.ctl.cfg.retention
        steps = [("forget", forget_job.run, controller_pb2.ForgetRequest()) if r.forget_after_backup else None,
                 ("prune", prune_job.run, controller_pb2.PruneRequest()) if r.prune_after_backup else None]
        for kind, body, req in filter(None, steps):
            try:
                for ev in self.runner.stream(self._job(kind, context, scheduled=True, locks=forget_job.LOCKS,
                                                       audit={"after": "backup"}),
                                             lambda ctx, body=body, req=req: body(ctx, req), _cancel_event(context)):
                    yield events.log(f"{kind}: {ev.result.summary}") if ev.WhichOneof("kind") == "result" else ev
            except errors.RagBackupError as exc:  # recorded by the runner; the backup itself succeeded
                yield events.log(f"{kind} after backup did not run to the end: {exc.message}")
