"""Runs a restore plan: stream a snapshot's components to their agents.

In: a RestoreRequest and the Controller. Out: JobEvents and, per component, the
agent's RestoreResult (where it wrote, what it moved aside). Every tree entry is
checked (no absolute paths, no `..`) before it is sent.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import Generator, Iterable, Iterator

import grpc

from ragbackup import entry_parts, errors, mismatch, wire
from ragbackup.component_options import PathsOptions
from ragbackup.repo.index import IndexCache
from ragbackup.repo.manifest import Manifest
from ragbackup.repo.packs import pack_key
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import Entry, SpilledIds, check_entry, joined_ids
from ragbackup.v1 import agent_pb2, common_pb2, controller_pb2

from ragbackup.controller import archive_tier, events, locks
from ragbackup.controller.component_spec import component_spec
from ragbackup.controller.policy.plan import (RestorePlan, RestoreTarget, plan_restore, restore_cost, restore_steps,
                                              restore_waves)
from ragbackup.controller.state import Controller

ENTRY_BATCH = 512
CHUNK_BATCH_BYTES = 2 * 1024 * 1024
# Chunk ids handed to read_payloads at once (a multiple of its READ_LOOKUP, so its reads
# merge as before): one RDB entry names 816,000 chunks at 3,000,000 keys, 60 MB as a list.
READ_IDS = 20_000
PACK_ORDER_IDS = 5000  # chunk ids located at once while a restore's pack order is found
# One chunk id in PACK_ORDER_STRIDE is located to find the pack order: a component's packs hold
# hundreds to thousands of chunks written back to back (repo/writer.py), so the sample names every
# pack read for more than that many chunks in a row; one it misses is fetched when read. Locating
# every id had cost the controller about 3 thread-seconds beside a scale-1 restore from a tier.
PACK_ORDER_STRIDE = 16
CHUNKS_FIELD = agent_pb2.RestoreCommand.DESCRIPTOR.fields_by_name["chunks"].number
log = logging.getLogger("ragbackup.controller")
_PB_TYPES = {"file": common_pb2.ENTRY_TYPE_FILE, "dir": common_pb2.ENTRY_TYPE_DIR,
             "symlink": common_pb2.ENTRY_TYPE_SYMLINK, "hardlink": common_pb2.ENTRY_TYPE_HARDLINK}


def to_proto(e: Entry, joined: bool = False) -> common_pb2.Entry:
    """The wire entry of a tree entry; with `joined`, its chunk ids in one field (Entry.chunk_ids)."""
    out = common_pb2.Entry(path=e.path, type=_PB_TYPES[e.type], mode=e.mode, uid=e.uid, gid=e.gid,
                           mtime_ns=e.mtime_ns, size=e.size, target=e.target, holes=e.holes, layout=e.layout)
    if not e.chunks:
        return out
    if joined:
        ids = joined_ids(e.chunks)
        out.chunk_ids = ids if type(ids) is bytes else bytes(ids)
    else:
        out.chunks.extend(e.chunks)
    return out


@dataclass(frozen=True)
class EntryForm:
    """How an agent reads a restore stream's entries (its HealthReply.features)."""

    joined: bool = False  # Entry.chunk_ids, the ids joined (wire.RESTORE_CHUNK_IDS)
    parts: bool = False  # an entry of many ids split over several entries (wire.ENTRY_PARTS, entry_parts.py)


def entry_form(ctl: Controller, agent: str) -> EntryForm:
    """The entry form `agent` reads in a restore stream (HealthReply.features).

    Asked at each restore or drill, so an agent replaced by an older version is sent the form
    it reads. AgentUnavailable when no connection comes up (as the call itself would raise);
    an agent whose Health fails is sent the oldest form, and the call reports the rest.
    """
    try:
        reply = ctl.agents.stub(agent).Health(agent_pb2.HealthRequest(), timeout=CHECK_TIMEOUT)
    except grpc.RpcError:
        return EntryForm()
    joined = wire.RESTORE_CHUNK_IDS in reply.features
    return EntryForm(joined=joined, parts=joined and wire.ENTRY_PARTS in reply.features)


class _Sender:
    """Builds the Restore request stream; remembers the first error it hit.

    In: the repository, the call's RestoreStart, the component's tree ids and the entry form
    the agent reads. Out: the request messages, in order."""

    def __init__(self, repo: Repository, start: agent_pb2.RestoreStart, tree: list[bytes],  # noqa: PLR0913
                 form: EntryForm = EntryForm(), spill: str | None = None):
        """`spill`: a directory where an entry's long id list is kept while it is sent (the
        controller's staging dir), not memory: the stream needs it only in order."""
        self.repo, self.start, self.tree, self.form, self.spill = repo, start, tree, form, spill
        self.locator = repo.locator()  # pack headers held across the stream's batches
        self.error: BaseException | None = None
        self.sent = 0

    def __iter__(self) -> Iterator[agent_pb2.RestoreCommand | bytes]:
        """Start, entry batches and chunk batches (pre-encoded RestoreCommand bytes), then finish."""
        try:
            yield agent_pb2.RestoreCommand(start=self.start)
            batch: list[Entry] = []
            batch_bytes = 0
            for e in self.repo.read_tree(self.tree, self.spill):
                check_entry(e)
                batch.append(e)
                batch_bytes += e.size
                if len(batch) >= ENTRY_BATCH or batch_bytes >= CHUNK_BATCH_BYTES:
                    yield from self._send(batch)
                    batch, batch_bytes = [], 0
            yield from self._send(batch)
            yield agent_pb2.RestoreCommand(finish=agent_pb2.RestoreFinish())
        except Exception as exc:  # not GeneratorExit: gRPC closes this stream when the agent answers early
            self.error = exc
            raise

    def _send(self, batch: list[Entry]) -> Iterator[agent_pb2.RestoreCommand | bytes]:
        if not batch:
            return
        yield from self._entry_commands(batch)
        chunks: list[wire.WireChunk] = []
        size = 0
        ids = (cid for e in batch if e.type == "file" for cid in e.chunks)
        while part := list(itertools.islice(ids, READ_IDS)):
            for payload, loc in self.repo.read_payloads(part, self.locator):
                chunks.append((loc.id, payload, loc.compressed, loc.raw_length))
                size += len(payload)
                self.sent += loc.raw_length
                if size >= CHUNK_BATCH_BYTES:
                    yield wire.encode_chunk_batch(CHUNKS_FIELD, chunks)
                    chunks, size = [], 0
        if chunks:
            yield wire.encode_chunk_batch(CHUNKS_FIELD, chunks)


    def _entry_commands(self, batch: list[Entry]) -> Iterator[agent_pb2.RestoreCommand]:
        """The batch's entries: one message, or, to an agent that reads parts, an entry of more than
        PART_IDS ids alone in one message a part, between messages of the entries around it."""
        if not self.form.parts:
            yield _entries_command([to_proto(e, self.form.joined) for e in batch])
            return
        for run, split in entry_parts.runs(batch, lambda e: len(e.chunks)):
            if not split:
                yield _entries_command([to_proto(e, joined=True) for e in run])
                continue
            e, = run
            ids = e.chunks if isinstance(e.chunks, SpilledIds) else joined_ids(e.chunks)
            for part in entry_parts.split_entry(to_proto(replace(e, chunks=())), ids):
                yield _entries_command([part])


def _entries_command(entries: list[common_pb2.Entry]) -> agent_pb2.RestoreCommand:
    return agent_pb2.RestoreCommand(entries=common_pb2.EntryBatch(entries=entries))


PARALLEL_COMPONENTS = 2


@dataclass
class _Running:
    """One component's Restore call in flight: its request stream and the call's future."""

    name: str
    agent: str
    sender: _Sender
    future: grpc.Future


def _restore_start(ctl: Controller, repo: Repository, manifest: Manifest,  # noqa: PLR0913 (one start's parts)
                   comp: RestoreTarget, plan: RestorePlan, check_only: bool = False) -> agent_pb2.RestoreStart:
    """The RestoreStart of one component (a check needs neither keys nor dictionaries)."""
    m = manifest.components[comp.name]
    cfg = ctl.cfg.components.get(comp.name)
    spec = component_spec(comp.name, m.kind, comp.path, (), cfg.settings if cfg else None)
    start = agent_pb2.RestoreStart(component=spec, target=plan.target, snapshot_id=manifest.id,
                                   facts_json=json.dumps(m.facts), force=plan.force)
    if not check_only:
        start.id_key = repo.id_key
        start.dictionaries.extend(repo.dictionaries().all())
    return start


def _start_component(ctl: Controller, repo: Repository, manifest: Manifest, comp: RestoreTarget,
                     plan: RestorePlan) -> _Running:
    """Open the Restore call for one component; gRPC consumes the sender on its own thread."""
    start = _restore_start(ctl, repo, manifest, comp, plan)
    os.makedirs(ctl.staging_dir, mode=0o750, exist_ok=True)
    sender = _Sender(repo, start, manifest.components[comp.name].tree_ids(), entry_form(ctl, comp.agent),
                     ctl.staging_dir)
    return _Running(comp.name, comp.agent, sender, ctl.agents.stub(comp.agent).Restore.future(iter(sender)))


CHECK_TIMEOUT = 60.0


def check_on_agents(ctl: Controller, repo: Repository, manifest: Manifest, plan: RestorePlan,
                    targets: list[RestoreTarget]) -> dict[str, str]:
    """Each agent runs the checks its Restore makes before writing (CheckRestore); name -> where it writes.

    Raises the agent's error (a non-empty --target, a path outside allowed_paths, ...), so
    a dry run refuses what the restore would, and the restore refuses before it stops anything.
    """
    where = {}
    for comp in targets:
        start = _restore_start(ctl, repo, manifest, comp, plan, check_only=True)
        try:
            reply = ctl.agents.stub(comp.agent).CheckRestore(start, timeout=CHECK_TIMEOUT)
        except grpc.RpcError as err:
            raise ctl.agents.translate(comp.agent, err) from None
        where[comp.name] = reply.restored_path
    return where


def _component_result(ctl: Controller, run: _Running) -> dict:
    """The agent's answer for a finished call; the sender's own error wins over the call's status."""
    try:
        res: agent_pb2.RestoreResult = run.future.result()
    except grpc.RpcError as err:
        if run.sender.error is not None:
            raise run.sender.error from None
        raise ctl.agents.translate(run.agent, err) from None
    return {"files": res.files, "dirs": res.dirs, "symlinks": res.symlinks, "bytes": res.bytes_written,
            "restored_path": res.restored_path, "moved_aside": res.moved_aside,
            "mismatches": _mismatches(res)}


def _mismatches(res: agent_pb2.RestoreResult) -> list[dict[str, str]]:
    """The agent's rows; an agent that sends only text gives one row per line."""
    if res.fact_mismatches:
        return [{"collection": m.collection, "check": m.check, "expected": m.expected, "found": m.found}
                for m in res.fact_mismatches]
    return [{"collection": "", "check": text, "expected": "", "found": ""} for text in res.mismatches]


def verification_failed(results: dict[str, dict]) -> errors.VerificationFailed | None:
    """The error for components whose restored data differs from the facts, None if none does."""
    table = mismatch.rows({n: r["mismatches"] for n, r in results.items() if r["mismatches"]})
    if not table:
        return None
    return errors.VerificationFailed(
        f"restored data differs from the snapshot's facts ({len(table)} difference(s)):\n{mismatch.render(table)}",
        {"mismatches": table[:mismatch.MAX_ROWS], "mismatch_count": len(table)})


def restore_components(ctl: Controller, repo: Repository, manifest: Manifest, plan: RestorePlan,
                       targets: dict[str, RestoreTarget]) -> Generator[controller_pb2.JobEvent, None, dict]:
    """Restore the plan's components wave by wave, up to PARALLEL_COMPONENTS at once, with progress.

    The first failure cancels the calls still running (their agents discard their scratch
    directories) and is raised; later waves do not start.
    """
    sizes = {n: c.bytes_total for n, c in manifest.components.items()}
    total = sum(sizes.get(n, 0) for n in plan.components)
    results: dict[str, dict] = {}
    done_bytes = 0
    finished = threading.Event()  # set by each call's end, so the next component starts at once
    for wave in waves(repo, manifest, plan):
        queue, running = list(wave), []
        try:
            while queue or running:
                while queue and len(running) < PARALLEL_COMPONENTS:
                    running.append(_start_component(ctl, repo, manifest, targets[queue.pop(0)], plan))
                    running[-1].future.add_done_callback(lambda _f: finished.set())
                finished.wait(0.2)
                finished.clear()
                yield events.progress("restore", done_bytes + sum(r.sender.sent for r in running), total, "B")
                for r in [r for r in running if r.future.done()]:
                    running.remove(r)
                    results[r.name] = _component_result(ctl, r)
                    done_bytes += sizes.get(r.name, 0)
                    yield events.log(f"restored {r.name}: {results[r.name]['files']} files")
        finally:
            for r in running:
                r.future.cancel()
    return results


def waves(repo: Repository, manifest: Manifest, plan: RestorePlan) -> list[list[str]]:
    """restore_waves of the plan, each wave's costliest component first: the order restores start in."""
    return restore_waves(plan, manifest.kinds(), _costs(repo, manifest, plan.components))


def _costs(repo: Repository, manifest: Manifest, names: tuple[str, ...] | list[str]) -> dict[str, int]:
    """restore_cost of each component: its bytes, and its chunk and entry count through its tree's size."""
    out = {}
    for n in names:
        c = manifest.components[n]
        ids = c.tree_ids()
        tree = sum(loc.raw_length for loc in repo.index.lookup_many(ids).values()) if ids else 0
        out[n] = restore_cost(c.bytes_total, tree)
    return out


def choose_agent(component: str, recorded: str, requested: str, declared: list[str]) -> str:
    """Pure: --agent wins; else the component's agent if still declared; else the only agent."""
    for candidate in (requested, recorded):
        if candidate:
            if candidate not in declared:
                raise errors.UsageError(f"agent {candidate!r} (for {component}) is not declared in [agents]")
            return candidate
    if len(declared) == 1:
        return declared[0]
    raise errors.UsageError(f"component {component} has no agent (imported snapshot?): pass --agent NAME "
                            f"(declared: {', '.join(declared) or 'none'})")


def restore_targets(ctl: Controller, manifest: Manifest, plan: RestorePlan) -> list[RestoreTarget]:
    """The plan's components as the decision sees them: configured settings win over the snapshot's."""
    out = []
    for name in plan.components:
        m = manifest.components[name]
        cfg = ctl.cfg.components.get(name)
        settings = cfg.settings if cfg else PathsOptions()
        agent = choose_agent(name, cfg.agent if cfg else m.agent, plan.agent, list(ctl.cfg.agents))
        out.append(RestoreTarget(name, m.kind, agent, cfg.path if cfg else m.path,
                                 settings.service, settings.container, m.files))
    return out


def control_service(ctl: Controller, agent: str, service: str, action: str) -> str:
    """Ask `agent` to stop/start an application service; returns its state afterwards."""
    spec = component_spec(service.replace(":", "-").replace("/", "-"), "paths", "", (),
                          PathsOptions(service=service))
    try:
        reply = ctl.agents.stub(agent).ControlService(
            agent_pb2.ServiceRequest(component=spec, action=action, timeout_s=60), timeout=120)
    except grpc.RpcError as err:
        raise ctl.agents.translate(agent, err) from None
    return reply.state


def pack_orders(repo: Repository, index: IndexCache, manifest: Manifest, components: list[str],
                spill: str | None = None) -> Iterator[list[str]]:
    """The storage keys of the packs a restore of `components` reads, in the order it first reads them,
    a batch at a time as they are found (each key once): the packs of a component's trees, then those
    of every PACK_ORDER_IDS chunk ids of its files, sampled one in PACK_ORDER_STRIDE. `index`: the
    repository's cache, or a reader of it. `spill`: a directory for a tree's long id lists while read
    (as the restore's own read)."""
    seen: set[str] = set()

    def new(packs: Iterable[str]) -> list[str]:
        out = [k for k in map(pack_key, dict.fromkeys(packs)) if k not in seen]
        seen.update(out)
        return out

    for name in components:
        trees = manifest.components[name].tree_ids()
        yield new(index.pack_of_each(trees).values())
        every = (c for e in repo.read_tree(trees, spill) if e.type == "file" for c in e.chunks)
        ids = itertools.islice(every, 0, None, PACK_ORDER_STRIDE)
        while part := list(itertools.islice(ids, PACK_ORDER_IDS)):
            found = index.pack_of_each(part)
            yield new(found[cid] for cid in part if cid in found)


@contextlib.contextmanager
def reading_ahead(repo: Repository, manifest: Manifest, components: list[str],
                  spill: str | None = None) -> Iterator[None]:
    """While the block runs, tell a tier's pack cache the packs a restore of `components` reads, in
    order, from a thread of its own (finding the order reads every tree: 2 s of a scale-0.5 snapshot,
    no longer waited for before the first byte is sent). The order is this restore's own: another
    restore from the tier at the same time keeps its own. When the block ends the thread stops and the
    cache forgets the order. A failure here is only logged: the restore reads each pack when it needs it."""
    stop, order = threading.Event(), object()

    def feed() -> None:
        more = False
        try:
            with repo.index.reader() as index:
                for keys in pack_orders(repo, index, manifest, components, spill):
                    if stop.is_set():
                        return
                    repo.storage.read_ahead(keys, more=more, order=order)
                    more = True
        except errors.RagBackupError as exc:
            log.info("finding the restore's pack order stopped (packs are fetched as read): %s", exc.message)

    threading.Thread(target=feed, name="restore-pack-order", daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        repo.storage.end_order(order)


def run_restore(ctl: Controller, req: controller_pb2.RestoreRequest) -> Iterator[controller_pb2.JobEvent]:
    """Decide, then restore. A dry run and the restore run the same checks before anything is stopped
    or written: restore_steps (the plan) and check_on_agents (each agent's own checks)."""
    source = ctl.source(req.source)
    source = yield from archive_tier.resolve_source(ctl, source, req)  # --as-of, archive sets (thawed)
    repo, _ = ctl.synced(source)  # a tier: its catalog rebuilt from the tier itself
    hist = ctl.history(source)
    sid = plan_restore(req.id or "latest", list(req.components), req.target, hist).snapshot
    manifest = repo.load_manifest(sid)
    kinds = manifest.kinds()
    plan = plan_restore(sid, list(req.components), req.target, hist, kinds, req.force, req.agent)
    where = f"into {plan.target}" if plan.target else "in place"
    comps = restore_targets(ctl, manifest, plan)
    steps = restore_steps(plan, comps, ctl.cfg.app_services)
    paths = check_on_agents(ctl, repo, manifest, plan, comps)
    if req.dry_run:
        yield events.result(f"dry run: would restore {plan.snapshot} {where}",
                            {"snapshot": plan.snapshot, "dry_run": True, "components": list(plan.components),
                             "steps": list(steps), "restored_paths": paths})
        return
    yield events.log(f"restore {plan.snapshot}: {', '.join(plan.components)} {where}"
                     + (f" from tier {source}" if source != "primary" else ""))
    apps = ctl.cfg.app_services if not plan.target else ()
    fetched = getattr(repo.storage, "fetched", None)  # a tier's PackCache: what it downloads, told at the end
    before = (fetched.packs, fetched.bytes) if fetched else (0, 0)
    ahead: contextlib.AbstractContextManager = contextlib.nullcontext()
    if source != "primary" and getattr(repo.storage, "ahead", 0) > 0:  # a tier: its packs fetched ahead
        os.makedirs(ctl.staging_dir, mode=0o750, exist_ok=True)
        ahead = reading_ahead(repo, manifest, [n for wave in waves(repo, manifest, plan) for n in wave],
                              ctl.staging_dir)
    with ahead, locks.hold_all(ctl.state_dir, [f"component-{n}" for n in plan.components],
                               f"restore {plan.snapshot}"):
        for app in apps:
            yield events.log(f"stopping application {app.service} on {app.agent}")
            control_service(ctl, app.agent, app.service, "stop")
        results = yield from restore_components(ctl, repo, manifest, plan, {c.name: c for c in comps})
        for app in apps:
            yield events.log(f"starting application {app.service} on {app.agent}")
            control_service(ctl, app.agent, app.service, "start")
    if fetched:
        yield events.log(f"fetched {fetched.packs - before[0]} packs ({(fetched.bytes - before[1]) / 2**20:.1f} MiB) "
                         f"from tier {source}")
    failed = verification_failed(results)
    if failed:
        raise failed
    files = sum(r["files"] for r in results.values())
    yield events.result(f"restored {plan.snapshot} ({files} files) {where}",
                        {"snapshot": plan.snapshot, "components": results})
