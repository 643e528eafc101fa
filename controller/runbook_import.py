"""Runs an import: a runbook tarball (ours, or the old bash scripts') becomes a new snapshot.

In: the uploaded chunks (spooled to the staging dir), the operator's MEMBER=COMPONENT map and
the Controller. Out: once the scan found nothing unsafe, data (.env.backup as the config
component's .env) -> trees -> index -> facts derived from the imported databases -> snapshot
(kind "import", timed by the tarball) -> catalog row; the manifest says what was imported,
what was skipped and why.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator

from ragbackup import clock as clocks
from ragbackup import errors, faults
from ragbackup.repo.chunking import Compressor, cut_file
from ragbackup.repo.crypto import chunk_id
from ragbackup.repo.manifest import ComponentManifest, Manifest, store_stats
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import check_entry, hole_bytes
from ragbackup.repo.writer import BlobWriter

from ragbackup.controller import locks, runbook_facts
from ragbackup.controller.backup import Started, reserved_id
from ragbackup.controller.runbook_entries import MemberTable, TreeWalk, member_streams
from ragbackup.controller.runbook_env import place_env, plan_env
from ragbackup.controller.runbook_layout import (ENV_BACKUP, Target, archive_hints, check_component_name,
                                                 map_archive, snapshot_time)
from ragbackup.controller.runbook_members import normalise, sparse_holes
from ragbackup.controller.runbook_scan import Archive, ImportLimits, Scan, inner_members, readable, scan
from ragbackup.controller.state import Controller

log = logging.getLogger("ragbackup.controller")
MiB = 1024 * 1024
HEADROOM = 64 * MiB  # left free on the staging volume
SPACE_CHECK_EVERY = 64 * MiB
SIZE_KEY = "rag-import-size"  # request metadata: the file size ragctl is about to send
MAP_KEY = "rag-import-map"  # request metadata: JSON {member: component} from `ragctl import --map`
SYMLINKS_KEY = "rag-import-symlinks"  # request metadata: "outside" from `ragctl import --allow-outside-symlinks`
_FACT_FILES = {"redis": "dump.rdb", "chroma": "chroma.sqlite3"}  # copied aside to derive facts from


@dataclass(frozen=True)
class ImportRequest:
    filename: str
    reason: str
    user: str
    size_hint: int = 0
    limits: ImportLimits = field(default_factory=ImportLimits)
    mapping: dict[str, str] = field(default_factory=dict)  # member (stem, name or .env.backup) -> component
    outside_symlinks: bool = False  # keep symlinks pointing outside their component (--allow-outside-symlinks)


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
    env: tuple[Archive, bytes] | None = None  # where .env.backup went: its tree and path there
    report: dict = field(default_factory=lambda: {"skipped": [], "warnings": []})
    copy_failed: dict[int, str] = field(default_factory=dict)  # archive index -> why its copy failed

    def copy_path(self, arc: Archive) -> str:
        """Where the file facts are derived from is copied while it is stored."""
        return os.path.join(os.path.dirname(self.path), f"facts-{arc.index}")


def upload_request(filename: str, reason: str, metadata: dict, user: str) -> ImportRequest:
    """What the first ImportChunk and the call's metadata say about the upload."""
    try:
        size = max(0, int(metadata.get(SIZE_KEY) or 0))
    except ValueError:
        size = 0
    name = os.path.basename(filename.replace("\\", "/")) or "upload.tar.gz"
    return ImportRequest(filename=name, reason=reason, user=user, size_hint=size,
                         mapping=parse_mapping(metadata.get(MAP_KEY) or "{}"),
                         outside_symlinks=metadata.get(SYMLINKS_KEY) == "outside")


def parse_mapping(text: str) -> dict[str, str]:
    """The --map metadata: a JSON object of strings; UsageError otherwise."""
    try:
        mapping = json.loads(text)
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in mapping.items()):
        raise errors.UsageError(f"the import's {MAP_KEY} is not a JSON object of MEMBER: COMPONENT strings")
    for member, name in mapping.items():
        check_component_name(name, f"--map {member}={name}")
    return mapping


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
        limits = dataclasses.replace(req.limits, max_expansion_ratio=ctl.cfg.imports.max_expansion_ratio)
        s = scan(path, req.filename, table, limits, cancel)
        targets = _targets(ctl, s, req.mapping)
        env, report = _place_env(ctl, s, table, targets, req.mapping)
        for arc in s.archives:
            for _ in TreeWalk(table, arc.index, arc.root, _where(arc, s), req.outside_symlinks):
                pass  # refuses unsafe links and paths before anything is stored
        with reserved_id(ctl, started.at) as sid, locks.hold(ctl.state_dir, "repository", f"import {sid}",
                                                            shared=True):
            return _store(_Job(ctl, repo, sid, req, s, table, targets, path, cancel, started, env, report))
    finally:
        table.close()


def _where(arc: Archive, s: Scan) -> str:
    return f"{arc.member} in {s.filename}"


def _configured(ctl: Controller) -> dict[str, str]:
    return {n: c.kind for n, c in ctl.cfg.components.items()}


def _chosen(s: Scan, mapping: dict[str, str]) -> dict[int, str]:
    """Inner tarball index -> the component --map chose (by stem or file name); unknown keys refused."""
    out: dict[int, str] = {}
    used = {ENV_BACKUP, ".env"} & set(mapping)
    for arc in s.archives:
        for key in (arc.stem, arc.member.rsplit("/", 1)[-1]):
            if key in mapping:
                out[arc.index] = mapping[key]
                used.add(key)
    unknown = sorted(set(mapping) - used)
    if unknown:
        names = ", ".join(sorted(a.member.rsplit("/", 1)[-1] for a in s.archives))
        raise errors.UsageError(f"--map {unknown[0]}=...: {s.filename} has no such member (it holds {names}"
                                f"{', ' + ENV_BACKUP if s.env else ''})")
    return out


def _targets(ctl: Controller, s: Scan, mapping: dict[str, str]) -> dict[int, Target]:
    """Inner tarball -> component; two tarballs may not fill the same component."""
    configured = _configured(ctl)
    hints = archive_hints(s.manifest)
    chosen = _chosen(s, mapping)
    out: dict[int, Target] = {}
    seen: dict[str, str] = {}
    for arc in s.archives:
        base = arc.member.rsplit("/", 1)[-1]
        with _naming(base):
            t = map_archive(arc.stem, configured, hints.get(base), chosen.get(arc.index))
        check_component_name(t.name, _where(arc, s))
        if t.name in seen:
            raise errors.UsageError(f"{s.filename}: {seen[t.name]} and {arc.member} would both become "
                                    f"component {t.name}")
        seen[t.name] = arc.member
        out[arc.index] = t
    return out


@contextlib.contextmanager
def _naming(member: str):
    """A mapping's UsageError names the tarball member it is about."""
    try:
        yield
    except errors.UsageError as exc:
        raise errors.UsageError(f"{member}: {exc.message}") from None


def _place_env(ctl: Controller, s: Scan, table: MemberTable, targets: dict[int, Target],
               mapping: dict[str, str]) -> tuple[tuple[Archive, bytes] | None, dict]:
    """.env.backup into the config component's tree (a new tree when no tarball made one)."""
    report: dict = {"skipped": [{"member": m, "why": why} for m, why in s.skipped], "warnings": []}
    if s.env is None:
        return None, report
    chosen = mapping.get(ENV_BACKUP) or mapping.get(".env")
    plan = plan_env(s.archives, targets, _configured(ctl), chosen)
    placed = place_env(s.env, plan, s, table) if not isinstance(plan, str) else plan
    if isinstance(placed, str):
        report["skipped"].append({"member": s.env.member, "why": placed})
        return None, report
    targets.setdefault(placed[0].index, plan.target)  # a tree of its own when no tarball made one
    return placed, report


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
    for arc in job.scan.archives:
        name = job.targets[arc.index].name
        comps[name] = dataclasses.replace(comps[name], facts=_facts(job, arc))
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
            holes = sparse_holes(m)
            with readable(_where(arc, job.scan)), _copy_for_facts(job, arc, m, holes) as copy:
                ids, n = _store_file(job, writer, compressor, member_streams(f, holes, m.size),
                                     job.targets[arc.index].name, copy)
            n += hole_bytes(holes)
            if n != m.size:
                raise errors.IntegrityError(f"{_where(arc, job.scan)}: {m.name} gave {n} bytes, its header "
                                            f"says {m.size}")
            job.table.set_chunks(arc.index, normalise(m.name), ids, holes)
            total += n
            faults.point("import.mid")
    if job.env is not None:
        arc, path = job.env
        ids, n = _store_file(job, writer, compressor, [io.BytesIO(job.scan.env.data)], job.targets[arc.index].name)
        job.table.set_chunks(arc.index, path, ids)
    job.table.commit()
    if job.table.unstored():
        raise errors.IntegrityError(f"{job.scan.filename}: {job.table.unstored()} files seen by the first read "
                                    "were missing from the second")
    return total


@contextlib.contextmanager
def _copy_for_facts(job: _Job, arc: Archive, m, holes: list[int]) -> Iterator[runbook_facts.FactsCopy | None]:
    """A copy of the member when facts are derived from it (dump.rdb, chroma.sqlite3).

    A sparse member is not copied (the copy is written as a stream, without its holes): its
    component gets no facts, and the import's warnings say why.
    """
    want = _FACT_FILES.get(job.targets[arc.index].kind)
    path = normalise(m.name)
    rel = path[len(arc.root) + 1:] if arc.root else path
    if want is None or rel != want.encode():
        yield None
        return
    if holes:
        job.copy_failed[arc.index] = "it is a sparse member"
        yield None
        return
    with runbook_facts.FactsCopy(job.copy_path(arc)) as copy:
        yield copy
    if copy.error:
        job.copy_failed[arc.index] = copy.error


def _store_file(job: _Job, writer: BlobWriter, compressor: Compressor, streams: list[IO[bytes]],  # noqa: PLR0913
                component: str, copy: runbook_facts.FactsCopy | None = None) -> tuple[list[bytes], int]:
    """(chunk ids, bytes) of one file read from `streams`; its new chunks go to `component`'s own packs
    (as a backup's do: a restore of one component then reads only its packs)."""
    ids, n = [], 0
    for data in (d for f in streams for d in cut_file(job.repo.chunker, f)):
        _check_cancel(job.cancel)
        if copy is not None:
            copy.write(data)
        cid = chunk_id(job.repo.id_key, data)
        if writer.missing([cid]):
            payload, compressed = compressor.compress(data)
            writer.add_many([(cid, BLOB_DATA, payload, compressed, len(data))], component)
        ids.append(cid)
        n += len(data)
    return ids, n


def _component(job: _Job, writer: BlobWriter, arc: Archive) -> ComponentManifest:
    """One component's tree blobs and manifest entry."""
    t = job.targets[arc.index]
    cfg = job.ctl.cfg.components.get(t.name) if t.configured else None
    walk = TreeWalk(job.table, arc.index, arc.root, _where(arc, job.scan), job.req.outside_symlinks)
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


def _facts(job: _Job, arc: Archive) -> dict:
    """Facts derived from the imported data ({} for plain files); a warning when they cannot be."""
    t = job.targets[arc.index]
    want = _FACT_FILES.get(t.kind)
    if want is None:
        return {}
    path = job.copy_path(arc)
    try:
        if arc.index in job.copy_failed:
            raise runbook_facts.FactsUnavailable(f"{want}: {job.copy_failed[arc.index]}")
        if not os.path.exists(path):
            raise runbook_facts.FactsUnavailable(f"{os.path.basename(arc.member)} holds no {want} at its root")
        if t.kind == "redis":
            return runbook_facts.redis_facts(path, os.path.dirname(job.path))
        opts = job.ctl.cfg.components[t.name].options if t.configured else {}
        return runbook_facts.chroma_facts(path, str(opts.get("tenant", "default_tenant")),
                                          str(opts.get("database", "default_database")))
    except runbook_facts.FactsUnavailable as exc:
        job.report["warnings"].append(f"{t.name}: facts not derived ({exc}); a restore of it is not verified")
        log.warning("import %s: %s: facts not derived: %s", job.req.filename, t.name, exc)
        return {}
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _imported(job: _Job, comps: dict[str, ComponentManifest]) -> list[dict]:
    """What became of each member: component, entries (files, dirs, links) and bytes."""
    out = []
    for arc in job.scan.archives:
        if job.env is not None and arc.member == job.scan.env.member:
            continue  # the tree made for .env.backup alone: listed below
        name = job.targets[arc.index].name
        st = comps[name].stats
        out.append({"member": arc.member, "component": name, "bytes": st["bytes_total"],
                    "entries": st["files"] + st["dirs"] + st["symlinks"]})
    if job.env is not None:
        arc, path = job.env
        out.append({"member": job.scan.env.member, "component": job.targets[arc.index].name,
                    "as": os.fsdecode(path[len(arc.root) + 1:] if arc.root else path),
                    "bytes": len(job.scan.env.data), "entries": 1})
    return out


def _manifest(job: _Job, comps: dict[str, ComponentManifest], writer: BlobWriter, read: int) -> Manifest:
    taken, time_from = snapshot_time(job.scan.manifest, job.req.filename, job.started.at)
    return Manifest(
        id=job.sid, time=clocks.iso(taken), imported_at=clocks.iso(job.started.at),
        duration_s=job.started.duration_s(), kind="import", reason=job.req.reason or f"import {job.req.filename}",
        host=job.ctl.cfg.hostname, user=job.req.user, components=comps,
        stats=store_stats(comps, writer.stats, read, os.path.getsize(job.path)),
        source={**_source(job), "time_from": time_from, "imported": _imported(job, comps), **job.report})


def _source(job: _Job) -> dict:
    """Where the snapshot came from; what an export's manifest.json said about itself."""
    m = job.scan.manifest or {}
    said = {k: m[k] for k in ("timestamp", "snapshot_id", "version", "host") if isinstance(m.get(k), str)}
    return {"filename": job.req.filename, "bytes": os.path.getsize(job.path), **said}
