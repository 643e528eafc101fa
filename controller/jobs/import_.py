"""The import job: a runbook tarball uploaded by the caller becomes a new snapshot.

In: an ImportRequest, the uploaded pieces and the JobContext. Out: the new snapshot's
manifest; the record names it and counts bytes read, sent (uploaded) and added (stored).
"""
from __future__ import annotations

from typing import Iterable

from ragbackup.repo.manifest import Manifest

from ragbackup.controller.jobs.backup import record_snapshot
from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.runbook_import import ImportRequest, import_upload


def run(ctx: JobContext, req: ImportRequest, data: Iterable[bytes]) -> Manifest:
    manifest = import_upload(ctx.controller, req, data, ctx.cancel, ctx.clock)
    record_snapshot(ctx, manifest)
    return manifest
