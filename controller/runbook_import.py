"""Runs an import: a runbook tarball (ours, or the old bash scripts') becomes a new snapshot.

In: the uploaded chunks (spooled to the staging dir) and the Controller. Out: once the scan
found nothing unsafe, data -> trees -> index -> snapshot (kind "import") -> catalog row.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import IO, Iterable

from ragbackup import clock as clocks
from ragbackup import errors
from ragbackup.repo.chunking import Compressor, cut_file
from ragbackup.repo.crypto import chunk_id
from ragbackup.repo.manifest import ComponentManifest, Manifest, store_stats
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import check_entry
from ragbackup.repo.writer import BlobWriter

from ragbackup.controller import locks
from ragbackup.controller.backup import Started, reserved_id
from ragbackup.controller.runbook_entries import MemberTable, TreeWalk
from ragbackup.controller.runbook_layout import Target, archive_hints, check_component_name, map_archive
from ragbackup.controller.runbook_members import normalise
from ragbackup.controller.runbook_scan import Archive, ImportLimits, Scan, inner_members, readable, scan
from ragbackup.controller.state import Controller

log = logging.getLogger("ragbackup.controller")
MiB = 1024 * 1024
HEADROOM = 64 * MiB  # left free on the staging volume
SPACE_CHECK_EVERY = 64 * MiB
SIZE_KEY = "rag-import-size"  # request metadata: the file size ragctl is about to send


@dataclass(frozen=True)
class ImportRequest:
    filename: str
    reason: str
    user: str
    size_hint: int = 0
    limits: ImportLimits = field(default_factory=ImportLimits)


@dataclass
class _Job:
    ctl: Controller
    repo: Repository
    sid: str
    req: ImportRequest
    scan: Scan
    table: MemberTable
    targets: dict[int, Target]
    path: str
    cancel: threading.Event
    started: Started


def upload_request(filename: str, reason: str, metadata: dict, user: str) -> ImportRequest:
    """What the first ImportChunk and the call's metadata say about the upload."""
    try:
        size = max(0, int(metadata.get(SIZE_KEY) or 0))
    except ValueError:
        size = 0
    name = os.path.basename(filename.replace("\\", "/")) or "upload.tar.gz"
    return ImportRequest(filename=name, reason=reason, user=user, size_hint=size)


def import_upload(ctl: Controller, req: ImportRequest, data: Iterable[bytes], cancel: threading.Event,
                  clock: clocks.Clock = clocks.SYSTEM) -> Manifest:
    """Spool the upload to the staging dir, import it, remove the spool; returns the manifest."""
    ctl.repo()  # fail before the upload when there is no repository
    os.makedirs(ctl.staging_dir, mode=0o750, exist_ok=True)
    _check_space(ctl.staging_dir, req.size_hint, req.filename)
    work = tempfile.mkdtemp(prefix=".import-", dir=ctl.staging_dir)
    try:
        path = _spool(os.path.join(work, "upload"), data, req.filename, cancel)
        return import_file(ctl, path, req, cancel, clock)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_space(staging: str, need: int, filename: str) -> None:
    free = shutil.disk_usage(staging).free
    if need + HEADROOM > free:
        raise errors.NoSpace(
            f"import {filename}: the controller's staging directory {staging} has {free // MiB} MiB free, "
            f"the upload needs {need // MiB} MiB plus {HEADROOM // MiB} MiB headroom; free space there "
            "or point [controller] state_dir at a larger volume")


def _spool(path: str, data: Iterable[bytes], filename: str, cancel: threading.Event) -> str:
    written, next_check = 0, SPACE_CHECK_EVERY
    try:
        with open(path, "xb") as f:
            for piece in data:
                _check_cancel(cancel)
                f.write(piece)
                written += len(piece)
                if written >= next_check:
                    _check_space(os.path.dirname(path), 0, filename)
                    next_check += SPACE_CHECK_EVERY
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise errors.NoSpace(f"import {filename}: the staging volume of {path} filled up after "
                             f"{written // MiB} MiB") from None
    _check_cancel(cancel)
    return path


def _check_cancel(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise errors.Cancelled("the import was cancelled")


def import_file(ctl: Controller, path: str, req: ImportRequest, cancel: threading.Event,  # noqa: PLR0913
                clock: clocks.Clock = clocks.SYSTEM) -> Manifest:
    """Import a tarball already on the controller's disk as a new snapshot; returns its manifest."""
    repo = ctl.repo()
    started = Started(req.user, clock.now(), clock)
    table = MemberTable(os.path.join(os.path.dirname(path), "members.sqlite"))
    try:
        s = scan(path, req.filename, table, req.limits, cancel)
        targets = _targets(ctl, s)
        for arc in s.archives:
            for _ in TreeWalk(table, arc.index, arc.root, _where(arc, s)):
                pass  # refuses unsafe links and paths before anything is stored
        with reserved_id(ctl, started.at) as sid, locks.hold(ctl.state_dir, "repository", f"import {sid}", shared=True):
            return _store(_Job(ctl, repo, sid, req, s, table, targets, path, cancel, started))
    finally:
        table.close()


def _where(arc: Archive, s: Scan) -> str:
    return f"{arc.member} in {s.filename}"


def _targets(ctl: Controller, s: Scan) -> dict[int, Target]:
    """Inner tarball -> component; two tarballs may not fill the same component."""
    configured = {n: c.kind for n, c in ctl.cfg.components.items()}
    hints = archive_hints(s.manifest)
    out: dict[int, Target] = {}
    seen: dict[str, str] = {}
    for arc in s.archives:
        t = map_archive(arc.stem, configured, hints.get(arc.member.rsplit("/", 1)[-1]))
        check_component_name(t.name, _where(arc, s))
        if t.name in seen:
            raise errors.UsageError(f"{s.filename}: {seen[t.name]} and {arc.member} would both become "
                                    f"component {t.name}")
        seen[t.name] = arc.member
        out[arc.index] = t
    return out


def _store(job: _Job) -> Manifest:
    """Data, then trees, then index (commit), then the snapshot and its catalog row."""
    writer = BlobWriter(job.repo, job.ctl.pack_staging)
    try:
        read = _store_files(job, writer)
        comps = {job.targets[a.index].name: _component(job, writer, a) for a in job.scan.archives}
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    try:
        manifest = _manifest(job, comps, writer, read)
        job.repo.save_manifest(manifest)
    finally:
        writer.close()  # after the snapshot: until then prune keeps what it relies on
    job.ctl.catalog.add(manifest)
    log.info("import %s: snapshot %s with %s", job.req.filename, job.sid, ", ".join(sorted(comps)))
    return manifest


def _store_files(job: _Job, writer: BlobWriter) -> int:
    """Pass 2: chunk every regular file as the agent would, store new chunks, note chunk lists."""
    compressor = Compressor(job.repo.params.compression_level)
    total = 0
    with contextlib.closing(inner_members(job.path, job.scan, job.cancel)) as files:
        for arc, m, f in files:
            with readable(_where(arc, job.scan)):
                ids, n = _store_file(job, writer, compressor, f)
            if n != m.size:
                raise errors.IntegrityError(f"{_where(arc, job.scan)}: {m.name} gave {n} bytes, its header "
                                            f"says {m.size}")
            job.table.set_chunks(arc.index, normalise(m.name), ids)
            total += n
    job.table.commit()
    if job.table.unstored():
        raise errors.IntegrityError(f"{job.scan.filename}: {job.table.unstored()} files seen by the first read "
                                    "were missing from the second")
    return total


def _store_file(job: _Job, writer: BlobWriter, compressor: Compressor, f: IO[bytes]) -> tuple[list[bytes], int]:
    ids, n = [], 0
    for data in cut_file(job.repo.chunker, f):
        _check_cancel(job.cancel)
        cid = chunk_id(job.repo.id_key, data)
        if writer.missing([cid]):
            payload, compressed = compressor.compress(data)
            writer.add(cid, BLOB_DATA, payload, compressed, len(data))
        ids.append(cid)
        n += len(data)
    return ids, n


def _component(job: _Job, writer: BlobWriter, arc: Archive) -> ComponentManifest:
    """One component's tree blobs and manifest entry."""
    t = job.targets[arc.index]
    cfg = job.ctl.cfg.components.get(t.name) if t.configured else None
    walk = TreeWalk(job.table, arc.index, arc.root, _where(arc, job.scan))
    fd, tree_path = tempfile.mkstemp(prefix=".tree-", dir=os.path.dirname(job.path))
    try:
        with os.fdopen(fd, "wb") as f:
            for e in walk:
                check_entry(e)
                f.writelines(e.json_pieces())
        tree = writer.add_tree(tree_path)
    finally:
        os.unlink(tree_path)
    st = walk.stats
    return ComponentManifest(
        kind=t.kind, agent=cfg.agent if cfg else "", path=cfg.path if cfg else "", capture_id=f"{job.sid}.{t.name}",
        tree=tuple(x.hex() for x in tree),
        stats={"files": st.files, "dirs": st.dirs, "symlinks": st.symlinks, "bytes_total": st.bytes_total,
               "bytes_read": st.bytes_total, "files_reused": 0},
        source={"archive": arc.member, "root": os.fsdecode(arc.root)})


def _manifest(job: _Job, comps: dict[str, ComponentManifest], writer: BlobWriter, read: int) -> Manifest:
    return Manifest(
        id=job.sid, time=clocks.iso(job.started.at), duration_s=job.started.duration_s(), kind="import",
        reason=job.req.reason or f"import {job.req.filename}", host=job.ctl.cfg.hostname, user=job.req.user,
        components=comps, stats=store_stats(comps, writer.stats, read, os.path.getsize(job.path)),
        source=_source(job))


def _source(job: _Job) -> dict:
    """Where the snapshot came from; what an export's manifest.json said about itself."""
    m = job.scan.manifest or {}
    said = {k: m[k] for k in ("timestamp", "snapshot_id", "version", "host") if isinstance(m.get(k), str)}
    return {"filename": job.req.filename, "bytes": os.path.getsize(job.path), **said}
