"""Runs a backup plan: capture each component from its agent into the repository.

In: a BackupRequest and the services it needs (BackupServices: the job's context). Out: JobEvents while it runs and, only
after packs and index are durable, one snapshot manifest (then the catalog row).
A failure or cancellation leaves no snapshot, only garbage for prune.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import queue
import tempfile
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generator, Iterator, Protocol, Sequence

import grpc
from google.protobuf.json_format import MessageToDict

from ragbackup import clock as clocks
from ragbackup import errors, faults
from ragbackup.config import ControllerConfig
from ragbackup.entry_parts import EntryJoiner
from ragbackup.repo.dictionary import Dictionaries, frame_dict_id
from ragbackup.repo.manifest import ComponentManifest, Manifest, store_stats
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.repository import Repository
from ragbackup.repo.snapshots import allocate_id
from ragbackup.repo.tree import RDB_RECORDS, Entry, SpilledIds, check_entry, received_chunk_ids
from ragbackup.repo.writer import DEFAULT_STREAM, BlobWriter
from ragbackup.v1 import agent_pb2, common_pb2, controller_pb2

from ragbackup.controller import events, locks
from ragbackup.controller.agents import Agents
from ragbackup.controller.catalog import Catalog
from ragbackup.controller.component_spec import component_spec as spec_of
from ragbackup.controller.policy.plan import BackupPlan, ComponentPlan, History, plan_backup
from ragbackup.controller.refcheck import RefCheck

_TYPES = {common_pb2.ENTRY_TYPE_FILE: "file", common_pb2.ENTRY_TYPE_DIR: "dir",
          common_pb2.ENTRY_TYPE_SYMLINK: "symlink", common_pb2.ENTRY_TYPE_HARDLINK: "hardlink"}
_MODES = {controller_pb2.BACKUP_MODE_FULL: "full", controller_pb2.BACKUP_MODE_INCREMENTAL: "incremental"}
PARALLEL_COMPONENTS = 3
_reserved: set[str] = set()
_reserve_lock = threading.Lock()


class BackupServices(Protocol):
    """What a backup needs of the controller (a JobContext provides it)."""

    cfg: ControllerConfig
    agents: Agents
    catalog: Catalog
    state_dir: str
    staging_dir: str
    pack_staging: str

    def repository(self, name: str = ...) -> Repository: ...

    def history(self) -> list[History]: ...


def to_tree_entry(pe: common_pb2.Entry, chunks: Sequence[bytes] | None = None) -> Entry:
    """The tree's entry for an agent's, with `chunks` (its parts' ids joined) or the ids it carries;
    UnsafePath for an unknown type, IntegrityError for a broken id list."""
    if pe.type not in _TYPES:
        raise errors.UnsafePath(f"refused entry {pe.path!r} of unknown type {pe.type}")
    return Entry(path=pe.path, type=_TYPES[pe.type], mode=pe.mode, uid=pe.uid, gid=pe.gid, mtime_ns=pe.mtime_ns,
                 size=pe.size, chunks=received_chunk_ids(pe) if chunks is None else chunks, target=pe.target,
                 holes=list(pe.holes), layout=pe.layout)


def component_spec(ctl: BackupServices, name: str) -> common_pb2.ComponentSpec:
    c = ctl.cfg.components[name]
    return spec_of(c.name, c.kind, c.path, c.exclude, c.settings)


def _reserve_id(ctl: BackupServices, when: datetime.datetime) -> str:
    with _reserve_lock:
        sid = allocate_id(when, ctl.catalog.ids() | _reserved)
        _reserved.add(sid)
        return sid


@contextlib.contextmanager
def reserved_id(ctl: BackupServices, when: datetime.datetime) -> Iterator[str]:
    """A fresh snapshot id for a job started `when` (imports too), kept from other jobs until the block ends."""
    sid = _reserve_id(ctl, when)
    try:
        yield sid
    finally:
        with _reserve_lock:
            _reserved.discard(sid)


class _Capture:
    """Controller side of one Capture stream: answers offers, stores chunks, writes the tree."""

    def __init__(self, repo: Repository, writer: BlobWriter, tree_file, may_train: bool = True,  # noqa: PLR0913
                 spill: str | None = None, stream: str = DEFAULT_STREAM):
        """`spill`: a directory where a split entry's ids are kept (an unlinked file) while its
        tree line is written and its chunks checked; None keeps them in memory. `stream`: the
        writer's stream the chunks go to (the component's name: packs of its own)."""
        self.repo, self.writer, self.tree, self.stream = repo, writer, tree_file, stream
        self.may_train = may_train  # the agent may send one dictionary (it was given none)
        self.wants: queue.SimpleQueue = queue.SimpleQueue()
        self.wanted: set[bytes] = set()
        self.done: agent_pb2.CaptureDone | None = None
        self.received = 0
        self.refs = RefCheck(writer)  # every chunk an entry names, checked while the stream runs
        self.joiner = EntryJoiner(spill)  # an entry of many chunk ids comes in parts (CaptureStart.entry_parts)

    def requests(self, start: agent_pb2.CaptureStart) -> Iterator[agent_pb2.CaptureCommand]:
        yield agent_pb2.CaptureCommand(start=start)
        while True:
            item = self.wants.get()
            if item is None:
                return
            yield item

    def handle(self, ev: agent_pb2.CaptureEvent) -> None:
        kind = ev.WhichOneof("kind")
        if kind == "offer":
            self._offer(ev.offer)
        elif kind == "chunks":
            self._chunks(ev.chunks)
        elif kind == "entries":
            self._entries(ev.entries)
        elif kind == "dictionary":
            self._dictionary(ev.dictionary)
        elif kind == "done":
            self.joiner.end()
            self.done = ev.done

    def _offer(self, offer) -> None:
        ids = list(offer.ids)
        idx = self.writer.missing(ids)
        self.wanted.update(ids[i] for i in idx)
        self.wants.put(agent_pb2.CaptureCommand(want=agent_pb2.ChunkWant(seq=offer.seq, indexes=idx)))

    def _chunks(self, chunks) -> None:
        dicts = self.repo.dictionaries()
        batch = []
        for c in chunks.chunks:
            if c.id not in self.wanted:
                raise errors.IntegrityError("agent sent a chunk that was not asked for")
            self.wanted.discard(c.id)
            payload = c.payload  # a view into the received message (wire.ChunkMessage)
            if c.compressed:
                _check_dictionary(payload, dicts)
            batch.append((c.id, BLOB_DATA, payload, c.compressed, c.raw_size))
            self.received += len(payload)
        self.writer.add_many(batch, self.stream)

    def _entries(self, entries) -> None:
        for pe, ids in self.joiner.feed(entries.entries):
            e = to_tree_entry(pe, ids)
            check_entry(e)
            if e.chunks:
                self.refs.add(e.chunks)
            self.tree.writelines(e.json_pieces())
            if isinstance(ids, SpilledIds):
                ids.close()

    def _dictionary(self, data: bytes) -> None:
        if not self.may_train:
            raise errors.IntegrityError("agent sent a compression dictionary it was not to train")
        self.may_train = False
        self.repo.save_dictionary(data)


def _check_dictionary(payload: bytes, dicts: Dictionaries) -> None:
    """A compressed chunk may name only a dictionary the repository holds (else it could never be read)."""
    did = frame_dict_id(payload)
    if did and did not in dicts:
        raise errors.IntegrityError(f"agent sent a chunk compressed with dictionary {did}, "
                                    "which it did not send and the repository does not hold")


@dataclass
class _Job:
    """What the capture threads of one backup share with the job that streams events."""

    repo: Repository
    writer: BlobWriter
    plan: BackupPlan
    sid: str
    cancel: threading.Event = field(default_factory=threading.Event)
    received: dict[str, int] = field(default_factory=dict)
    calls: list = field(default_factory=list)
    removals: int = 0  # the index's removal count when the job began (IndexCache.removals)
    verified: list[bytes] = field(default_factory=list)  # big chunk lists this job found or made wholly stored

    def stop(self) -> None:
        """Cancel every running capture (their streams end at once)."""
        self.cancel.set()
        for call in list(self.calls):
            call.cancel()


def capture_component(ctl: BackupServices, job: _Job, cp: ComponentPlan) -> ComponentManifest:
    """Capture one component from its agent (runs in a thread); returns its manifest part."""
    repo, writer, plan, sid = job.repo, job.writer, job.plan, job.sid
    comp = ctl.cfg.components[cp.name]
    ch = repo.chunker
    start = agent_pb2.CaptureStart(
        component=component_spec(ctl, cp.name), capture_id=f"{sid}.{cp.name}",
        parent_capture_id=cp.parent_capture_id, id_key=repo.id_key,
        chunker=agent_pb2.ChunkerParams(min_size=ch.min_size, avg_size=ch.avg_size, max_size=ch.max_size,
                                        seed=ch.seed),
        compression_level=repo.params.compression_level, full=plan.full,
        dictionary=repo.current_dictionary() or b"", layouts=[RDB_RECORDS], joined_chunk_ids=True,
        entry_parts=True)
    os.makedirs(ctl.staging_dir, mode=0o750, exist_ok=True)
    fd, tree_path = tempfile.mkstemp(prefix=f".tree-{cp.name}-", dir=ctl.staging_dir)
    cap: _Capture | None = None
    try:
        with errors.locate_os_error(tree_path, "spool the tree to"), os.fdopen(fd, "wb") as tree:
            cap = _Capture(repo, writer, tree, may_train=not start.dictionary, spill=ctl.staging_dir, stream=cp.name)
            _stream(ctl, job, cap, start)
        if cap.done is None:
            raise errors.AgentUnavailable(f"agent {comp.agent} ended the capture of {cp.name} early")
        if cap.wanted:
            raise errors.IntegrityError(f"agent {comp.agent} did not send {len(cap.wanted)} requested chunks")
        cap.refs.finish()
        job.verified.extend(cap.refs.digests)
        tree_ids = writer.add_tree(tree_path)
    finally:
        if cap is not None:
            cap.refs.close()
        os.unlink(tree_path)
    stats = MessageToDict(cap.done.stats, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return ComponentManifest(kind=comp.kind, agent=comp.agent, path=comp.path, capture_id=start.capture_id,
                             parent=cp.parent_snapshot, tree=tuple(t.hex() for t in tree_ids),
                             stats={k: int(v) for k, v in stats.items()},
                             facts=json.loads(cap.done.facts_json or "{}"))


def _stream(ctl: BackupServices, job: _Job, cap: _Capture, start: agent_pb2.CaptureStart) -> None:
    name = start.component.name
    agent = ctl.cfg.components[name].agent
    call = ctl.agents.stub(agent).Capture(cap.requests(start))
    job.calls.append(call)
    try:
        for ev in call:
            if job.cancel.is_set():
                raise errors.Cancelled(f"capture of {name} cancelled")
            cap.handle(ev)
            job.received[name] = cap.received
    except grpc.RpcError as err:
        if job.cancel.is_set():
            raise errors.Cancelled(f"capture of {name} cancelled") from None
        raise ctl.agents.translate(agent, err) from None
    finally:
        cap.wants.put(None)
        if cap.done is None:
            call.cancel()


def _capture_all(ctl: BackupServices, job: _Job) -> Generator[controller_pb2.JobEvent, None, dict[str, ComponentManifest]]:
    """Capture the plan's components, up to PARALLEL_COMPONENTS at a time, streaming progress.

    The first failure cancels the others and is raised once they have stopped; so does
    the job's own cancellation (ragctl gone), which arrives here as GeneratorExit.
    """
    comps = job.plan.components
    with ThreadPoolExecutor(min(PARALLEL_COMPONENTS, len(comps)), thread_name_prefix="capture") as pool:
        futures = [pool.submit(capture_component, ctl, job, cp) for cp in comps]
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                yield events.progress("capture", sum(job.received.values()), 0, "B")
                if any(f.exception() for f in done):
                    break
        finally:
            if any(not f.done() or f.exception() for f in futures):
                job.stop()
    failures = [f.exception() for f in futures if f.exception()]
    if failures:  # the cause, not the cancellations it triggered
        raise next((e for e in failures if not isinstance(e, errors.Cancelled)), failures[0])
    return {cp.name: f.result() for cp, f in zip(comps, futures)}


@dataclass(frozen=True)
class Started:
    """Who started a job that writes a snapshot, and when (by the job's clock)."""

    user: str
    at: datetime.datetime
    clock: clocks.Clock = clocks.SYSTEM

    def duration_s(self) -> float:
        return round((self.clock.now() - self.at).total_seconds(), 3)


def _manifest(ctl: BackupServices, job: _Job, comps: dict[str, ComponentManifest], started: Started) -> Manifest:
    stats = store_stats(comps, job.writer.stats, bytes_read=sum(c.bytes_read for c in comps.values()),
                        bytes_sent=sum(c.bytes_sent for c in comps.values()))
    return Manifest(id=job.sid, time=clocks.iso(started.at), duration_s=started.duration_s(), kind=job.plan.kind,
                    reason=job.plan.reason, host=ctl.cfg.hostname, user=started.user, components=comps, stats=stats)


def run_backup(ctl: BackupServices, req: controller_pb2.BackupRequest, user: str,
               clock: clocks.Clock = clocks.SYSTEM) -> Iterator[controller_pb2.JobEvent]:
    """The Backup job: plan, lock, capture every component, commit index, write snapshot."""
    repo = ctl.repository()
    configured = {n: c.kind for n, c in ctl.cfg.components.items()}
    started = Started(user, clock.now(), clock)
    plan = plan_backup(list(req.components), configured, _MODES.get(req.mode, "auto"), req.reason,
                       ctl.history(), started.at)
    with reserved_id(ctl, started.at) as sid:
        yield events.log(f"backup {sid}: {plan.kind}, components {', '.join(c.name for c in plan.components)}")
        with locks.hold(ctl.state_dir, "repository", f"backup {sid}", shared=True), \
                locks.hold_all(ctl.state_dir, [f"component-{c.name}" for c in plan.components], f"backup {sid}"):
            job = _Job(repo, BlobWriter(repo, ctl.pack_staging), plan, sid, removals=repo.index.removals())
            try:
                comps = yield from _capture_all(ctl, job)
                job.writer.commit()
            except BaseException:
                job.writer.abort()
                raise
            # Only now are the lists' chunks in the index; stale if anything left it since the job began.
            repo.index.mark_verified(job.verified, job.removals)
            faults.point("backup.after_index")
            try:
                manifest = _manifest(ctl, job, comps, started)
                repo.save_manifest(manifest)
            finally:
                job.writer.close()  # after the snapshot: until then prune keeps what it relies on
            ctl.catalog.add(manifest)
    s = manifest.stats
    yield events.result(
        f"snapshot {sid} ({plan.kind}): {s.bytes_total} bytes in {len(comps)} component(s), "
        f"{s.bytes_sent} sent, {s.bytes_stored} stored", manifest.summary())
