"""The agent's gRPC servicer: unpack a request, run capture/restore/health, pack the reply.

In: Capture/Restore streams and Health calls from the controller (mTLS).
Out: CaptureEvents and RestoreResults; the generic work lives in capture/ (the pipeline),
restore.py (the tree writer) and placement.py, each kind's own in kinds/ (kinds/registry.py).
"""
from __future__ import annotations

import collections
import glob
import json
import logging
import os
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence

import grpc

from ragbackup import __version__, errors, wire
from ragbackup.memory import give_back
from ragbackup.ahead import run_ahead
from ragbackup.config import AgentConfig
from ragbackup.entry_parts import EntryJoiner
from ragbackup.repo.chunking import ChunkerParams
from ragbackup.repo.dictionary import Dictionaries
from ragbackup.repo.tree import check_component_name
from ragbackup.v1 import agent_pb2, agent_pb2_grpc, common_pb2

from ragbackup.agent import checks, drill, drill_procs, install, leftovers, placement
from ragbackup.agent.cache import CacheReader, CacheWriter
from ragbackup.agent.capture.budget import ByteBudget
from ragbackup.agent.capture.pipeline import CAPTURE_BUDGET, SEND_AHEAD, CapturePipeline, CaptureSettings
from ragbackup.agent.component import Component
from ragbackup.agent.install import Installed, Restored
from ragbackup.agent.kinds.registry import kind_of
from ragbackup.agent.restore import ChunkDecoder, TreeWriter
from ragbackup.agent.scratch import SCRATCH_PREFIX, check_allowed, staging
from ragbackup.agent.services.base import make_controller

log = logging.getLogger("ragbackup.agent")


def _first(it: Iterator, field: str, what: str):
    try:
        cmd = next(it)
    except StopIteration:
        raise errors.UsageError(f"{what}: empty request stream") from None
    if cmd.WhichOneof("kind") != field:
        raise errors.UsageError(f"{what}: the first message must be {field}")
    return getattr(cmd, field)


class RestoreStream:
    """Pull-based reader of a Restore stream: entries in order, chunks on demand.

    In: the stream's messages after its start, and `spill`, a directory where an entry's ids
    sent in parts are kept (a temporary file, read back in order) rather than in memory.
    """

    def __init__(self, it: Iterator[agent_pb2.RestoreCommand], spill: str | None = None):
        self._it = it
        self._joiner = EntryJoiner(spill)  # an entry of many chunk ids comes in parts (wire.ENTRY_PARTS)
        self._entries: collections.deque = collections.deque()
        self._chunks: collections.deque = collections.deque()
        self.finished = False

    def _pull(self) -> None:
        cmd = next(self._it, None)
        kind = cmd.WhichOneof("kind") if cmd is not None else None
        if kind == "entries":
            self._entries.extend(self._joiner.feed(cmd.entries.entries))
        elif kind == "chunks":
            if cmd.chunks.chunks:
                self._chunks.append(cmd.chunks.chunks)
        elif kind == "finish":
            self._joiner.end()
            self.finished = True
        else:
            raise errors.Cancelled("restore stream ended before its finish message")

    def entries(self) -> Iterator[tuple[common_pb2.Entry, Iterable[bytes]]]:
        """(entry, its chunk ids) in order, a split entry's parts joined."""
        while True:
            while not self._entries and not self.finished:
                self._pull()
            if not self._entries:
                return
            yield self._entries.popleft()

    def try_batch(self) -> Sequence[common_pb2.Chunk] | None:
        """The next batch of chunks, reading messages as needed; None once the stream has finished."""
        while not self._chunks:
            if self.finished:
                return None
            self._pull()
        return self._chunks.popleft()


def sweep_leftovers(cfg: AgentConfig) -> None:
    """Remove what a killed agent left: unpublished cache files and scratch directories."""
    for pattern in (os.path.join(cfg.cache_dir, "*", "*.sqlite.tmp"),):
        for path in glob.glob(pattern):
            os.unlink(path)
    if os.path.isdir(cfg.staging_dir):
        for name in os.listdir(cfg.staging_dir):
            if name.startswith(SCRATCH_PREFIX):  # only our scratch dirs; kept-aside data stays
                shutil.rmtree(os.path.join(cfg.staging_dir, name), ignore_errors=True)


def _installs_elsewhere(comp: Component, target: str) -> bool:
    """In-place restores of databases and of container data go through a scratch dir first."""
    if target:
        return False
    return kind_of(comp).database or comp.container_path() is not None


class AgentServicer(agent_pb2_grpc.AgentServicer):
    def __init__(self, cfg: AgentConfig):
        self.cfg = cfg
        self.started = time.monotonic()
        self.workers = cfg.workers or max(2, os.cpu_count() or 2)
        self._budget = ByteBudget(CAPTURE_BUDGET)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="work")  # see workpool.py
        drill_procs.kill_leftovers(drill_procs.registry_dir(cfg.staging_dir))  # before their scratch dirs go
        sweep_leftovers(cfg)
        swept = leftovers.sweep_registered(leftovers.registry_dir(cfg.staging_dir))
        for path in swept.removed:
            log.warning("removed %s, left by a restore that did not end (the agent was stopped mid-restore)", path)
        for staged, final in swept.finished:
            log.warning("finished a restore into %s that was stopped after moving the old data aside: the restored "
                        "tree %s is now in place, the old data stays where it was moved", final, staged)

    def Capture(self, request_iterator, context: grpc.ServicerContext):
        start: agent_pb2.CaptureStart = _first(request_iterator, "start", "Capture")
        spec = start.component
        check_component_name(spec.name)
        comp = Component.of(spec)
        source = kind_of(comp).source
        log.info("capture %s (%s) capture_id=%s parent=%s full=%s", spec.name, spec.kind, start.capture_id,
                 start.parent_capture_id or "-", start.full)
        parent = None if start.full else CacheReader.open(self.cfg.cache_dir, spec.name, start.parent_capture_id)
        cache = CacheWriter(self.cfg.cache_dir, spec.name, start.capture_id)

        def next_want() -> agent_pb2.ChunkWant:
            cmd = next(request_iterator, None)
            if cmd is None or cmd.WhichOneof("kind") != "want":
                raise errors.Cancelled("the controller ended the capture stream")
            return cmd.want

        try:
            with source(comp, self.cfg) as (root, facts):
                c = start.chunker
                settings = CaptureSettings(
                    root=os.fsencode(root), exclude=tuple(spec.exclude), id_key=start.id_key,
                    chunker=ChunkerParams(c.min_size, c.avg_size, c.max_size, c.seed),
                    compression_level=start.compression_level or 3, workers=self.workers,
                    parent=parent, cache=cache, facts_json=facts, budget=self._budget, pool=self._pool,
                    dictionary=start.dictionary or None, layouts=tuple(start.layouts),
                    joined_ids=start.joined_chunk_ids, entry_parts=start.entry_parts,
                    scratch=self.cfg.staging_dir,
                    cancelled=lambda: not context.is_active())
                pipeline = CapturePipeline(settings, next_want)
                yield from run_ahead(pipeline.run, SEND_AHEAD, f"capture-{spec.name}")
            cache.publish(keep=(start.parent_capture_id,))
            log.info("capture %s done: %d files, %d read, %d sent", spec.name, pipeline.stats.files,
                     pipeline.stats.bytes_read, pipeline.stats.bytes_sent)
        finally:
            cache.discard()
            if parent is not None:
                parent.close()
            give_back()  # the capture's buffers back to the kernel

    def Restore(self, request_iterator, context: grpc.ServicerContext) -> agent_pb2.RestoreResult:
        start: agent_pb2.RestoreStart = _first(request_iterator, "start", "Restore")
        spec = start.component
        check_component_name(spec.name)
        comp = Component.of(spec)
        with staging(self.cfg, f"restore-{spec.name}") as scratch:
            plan = self._placement(comp, start.target, scratch)
            log.info("restore %s of %s into %s", spec.name, start.snapshot_id, plan.final)
            for path in leftovers.sweep_siblings(plan.final):
                log.warning("removed %s, left by an earlier restore of %s that did not end", path, spec.name)
            marker = leftovers.begin(leftovers.registry_dir(self.cfg.staging_dir), plan.staging)
            try:
                dicts = Dictionaries(start.dictionaries)
                counts = self._write_tree(plan, start.id_key, dicts, RestoreStream(request_iterator, scratch))
                done = self._put_in_service(comp, start, plan,
                                            lambda: leftovers.swapping(marker, plan.staging, plan.final))
            finally:
                leftovers.end(marker)
                give_back()
        aside, mismatches = done.aside, done.mismatches
        log.info("restore %s done: %d files into %s%s%s", spec.name, counts.files, plan.final,
                 f", previous data kept at {aside}" if aside else "",
                 f"; {len(mismatches)} mismatch(es) with the snapshot's facts: "
                 + "; ".join(m.text() for m in mismatches) if mismatches else "")
        final = spec.path if _installs_elsewhere(comp, start.target) else plan.final
        return agent_pb2.RestoreResult(files=counts.files, dirs=counts.dirs, symlinks=counts.symlinks,
                                       bytes_written=counts.bytes_written, restored_path=final,
                                       moved_aside=aside, mismatches=[m.text() for m in mismatches],
                                       fact_mismatches=[agent_pb2.FactMismatch(**m.to_dict()) for m in mismatches])

    def CheckRestore(self, request: agent_pb2.RestoreStart, context: grpc.ServicerContext) -> agent_pb2.RestoreResult:
        """Restore's checks before it writes (options, placement, the database's service); writes nothing."""
        spec = request.component
        check_component_name(spec.name)
        comp = Component.of(spec)
        if not request.target and kind_of(comp).database:
            install.database_service(comp)
        with staging(self.cfg, f"check-{spec.name}") as scratch:
            plan = self._placement(comp, request.target, scratch)
        final = spec.path if _installs_elsewhere(comp, request.target) else plan.final
        return agent_pb2.RestoreResult(restored_path=final)

    def _placement(self, comp: Component, target: str, scratch: str) -> placement.Placement:
        if _installs_elsewhere(comp, target):
            return placement.plan(comp.name, "", scratch)
        plan = placement.plan(comp.name, comp.path, target)
        check_allowed(os.path.dirname(plan.final.rstrip("/")) or "/", self.cfg)
        placement.check_target_free(plan)
        return plan

    def _write_tree(self, plan: placement.Placement, id_key: bytes, dicts: Dictionaries, stream: RestoreStream):
        writer = TreeWriter(plan.staging, id_key, like=plan.final if plan.in_place else None)
        decoder = ChunkDecoder(stream.try_batch, id_key, self.workers, dicts=dicts, pool=self._pool)
        try:
            for entry, ids in stream.entries():
                writer.write(entry, decoder, ids)
            return writer.finish()
        except BaseException:
            writer.close()
            placement.discard_staging(plan)
            raise
        finally:
            decoder.close()

    def _put_in_service(self, comp: Component, start: agent_pb2.RestoreStart,
                        plan: placement.Placement, aside_done: Callable[[], None]) -> Installed:
        """Swap a tree into place, or (a database, container data) hand it to its kind's install."""
        if not _installs_elsewhere(comp, start.target):
            return Installed(placement.swap_in(plan, aside_done), [])
        placement.swap_in(plan)
        restored = Restored(plan.final, json.loads(start.facts_json or "{}"), start.force, self.cfg.staging_dir)
        return kind_of(comp).install(comp, restored)

    def ControlService(self, request: agent_pb2.ServiceRequest, context) -> agent_pb2.ServiceReply:
        service = make_controller(Component.of(request.component).service())
        action = request.action
        timeout = request.timeout_s or 60.0
        log.info("service %s: %s", service.describe(), action)
        if action == "stop":
            service.stop(timeout)
        elif action == "start":
            service.start()
        elif action == "pause":
            service.pause()
        elif action == "unpause":
            service.unpause()
        elif action != "status":
            raise errors.UsageError(f"unknown service action {action!r}")
        return agent_pb2.ServiceReply(state=service.status())

    def Health(self, request: agent_pb2.HealthRequest, context) -> agent_pb2.HealthReply:
        return agent_pb2.HealthReply(version=__version__, hostname=socket.gethostname(),
                                     uptime_s=time.monotonic() - self.started,
                                     checks=[checks.check(spec) for spec in request.components],
                                     features=wire.AGENT_FEATURES)

    def Drill(self, request_iterator, context: grpc.ServicerContext) -> agent_pb2.DrillResult:
        start: agent_pb2.RestoreStart = _first(request_iterator, "start", "Drill")
        check_component_name(start.component.name)
        remaining = context.time_remaining()
        wait = drill.START_TIMEOUT_S if remaining is None else min(drill.START_TIMEOUT_S, remaining)
        setup = drill_procs.DrillSetup(self.cfg, self.workers, self._pool, context.is_active, time.monotonic() + wait)
        os.makedirs(self.cfg.staging_dir, mode=0o700, exist_ok=True)
        return drill.run(start, RestoreStream(request_iterator, self.cfg.staging_dir), setup)
