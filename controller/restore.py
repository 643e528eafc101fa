"""Runs a restore plan: stream a snapshot's components to their agents.

In: a RestoreRequest and the Controller. Out: JobEvents and, per component, the
agent's RestoreResult (where it wrote, what it moved aside). Every tree entry is
checked (no absolute paths, no `..`) before it is sent.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Generator, Iterator

import grpc

from ragbackup import errors, wire
from ragbackup.repo.manifest import Manifest
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import Entry, check_entry
from ragbackup.v1 import agent_pb2, common_pb2, controller_pb2

from ragbackup.controller import events, locks
from ragbackup.controller.policy.plan import RestorePlan, plan_restore, restore_waves
from ragbackup.controller.state import Controller

ENTRY_BATCH = 512
CHUNK_BATCH_BYTES = 2 * 1024 * 1024
CHUNKS_FIELD = agent_pb2.RestoreCommand.DESCRIPTOR.fields_by_name["chunks"].number
_PB_TYPES = {"file": common_pb2.ENTRY_TYPE_FILE, "dir": common_pb2.ENTRY_TYPE_DIR,
             "symlink": common_pb2.ENTRY_TYPE_SYMLINK, "hardlink": common_pb2.ENTRY_TYPE_HARDLINK}


def to_proto(e: Entry) -> common_pb2.Entry:
    return common_pb2.Entry(path=e.path, type=_PB_TYPES[e.type], mode=e.mode, uid=e.uid, gid=e.gid,
                            mtime_ns=e.mtime_ns, size=e.size, chunks=e.chunks, target=e.target, holes=e.holes,
                            layout=e.layout)


class _Sender:
    """Builds the Restore request stream; remembers the first error it hit."""

    def __init__(self, repo: Repository, start: agent_pb2.RestoreStart, tree: list[bytes]):
        self.repo, self.start, self.tree = repo, start, tree
        self.error: BaseException | None = None
        self.sent = 0

    def __iter__(self) -> Iterator[agent_pb2.RestoreCommand | bytes]:
        """Start, entry batches and chunk batches (pre-encoded RestoreCommand bytes), then finish."""
        try:
            yield agent_pb2.RestoreCommand(start=self.start)
            batch: list[Entry] = []
            batch_bytes = 0
            for e in self.repo.read_tree(self.tree):
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
        yield agent_pb2.RestoreCommand(entries=common_pb2.EntryBatch(entries=[to_proto(e) for e in batch]))
        chunks: list[wire.WireChunk] = []
        size = 0
        ids = [cid for e in batch if e.type == "file" for cid in e.chunks]
        for payload, loc in self.repo.read_payloads(ids):
            chunks.append((loc.id, payload, loc.compressed, loc.raw_length))
            size += len(payload)
            self.sent += loc.raw_length
            if size >= CHUNK_BATCH_BYTES:
                yield wire.encode_chunk_batch(CHUNKS_FIELD, chunks)
                chunks, size = [], 0
        if chunks:
            yield wire.encode_chunk_batch(CHUNKS_FIELD, chunks)


PARALLEL_COMPONENTS = 2


@dataclass
class _Running:
    """One component's Restore call in flight: its request stream and the call's future."""

    name: str
    agent: str
    sender: _Sender
    future: grpc.Future


def _start_component(ctl: Controller, repo: Repository, manifest: Manifest, name: str,
                     plan: RestorePlan) -> _Running:
    """Open the Restore call for one component; gRPC consumes the sender on its own thread."""
    m = manifest.components[name]
    cfg = ctl.cfg.components.get(name)
    agent = choose_agent(name, cfg.agent if cfg else m.agent, plan.agent, list(ctl.cfg.agents))
    spec = common_pb2.ComponentSpec(name=name, kind=m.kind, path=cfg.path if cfg else m.path,
                                    options_json=cfg.options_json() if cfg else "{}")
    start = agent_pb2.RestoreStart(component=spec, target=plan.target, id_key=repo.id_key,
                                   snapshot_id=manifest.id, facts_json=json.dumps(m.facts),
                                   force=plan.force, dictionaries=repo.dictionaries().all())
    sender = _Sender(repo, start, m.tree_ids())
    return _Running(name, agent, sender, ctl.agents.stub(agent).Restore.future(iter(sender)))


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
            "mismatches": list(res.mismatches)}


def restore_components(ctl: Controller, repo: Repository, manifest: Manifest,
                       plan: RestorePlan) -> Generator[controller_pb2.JobEvent, None, dict]:
    """Restore the plan's components wave by wave, up to PARALLEL_COMPONENTS at once, with progress.

    The first failure cancels the calls still running (their agents discard their scratch
    directories) and is raised; later waves do not start.
    """
    kinds = manifest.kinds()
    sizes = {n: c.bytes_total for n, c in manifest.components.items()}
    total = sum(sizes.get(n, 0) for n in plan.components)
    results: dict[str, dict] = {}
    done_bytes = 0
    for wave in restore_waves(plan, kinds, sizes):
        queue, running = list(wave), []
        try:
            while queue or running:
                while queue and len(running) < PARALLEL_COMPONENTS:
                    running.append(_start_component(ctl, repo, manifest, queue.pop(0), plan))
                time.sleep(0.2)
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


def dry_run_steps(plan: RestorePlan, manifest: Manifest, apps) -> list[str]:
    """Pure: the recovery steps in order, as text."""
    steps = [f"stop application {a.service} on agent {a.agent}" for a in apps]
    for n in plan.components:
        c = manifest.components[n]
        if plan.target:
            steps.append(f"write {n} ({c.kind}, {c.files} files) to {plan.target}/{n}")
            continue
        if c.kind in ("redis", "chroma"):
            steps.append(f"stop {n}'s service, move its current data aside, place the {c.kind} data, start it, "
                         "wait for its health check and compare with the snapshot's facts")
        else:
            steps.append(f"write {n} beside {c.path}, move the current directory aside as "
                         f"{n}.corrupted.<time>, put the restored one in place")
    steps += [f"start application {a.service} on agent {a.agent}" for a in apps]
    return steps


def control_service(ctl: Controller, agent: str, service: str, action: str) -> str:
    """Ask `agent` to stop/start an application service; returns its state afterwards."""
    spec = common_pb2.ComponentSpec(name=service.replace(":", "-").replace("/", "-"), kind="paths",
                                    options_json=json.dumps({"service": service}))
    try:
        reply = ctl.agents.stub(agent).ControlService(
            agent_pb2.ServiceRequest(component=spec, action=action, timeout_s=60), timeout=120)
    except grpc.RpcError as err:
        raise ctl.agents.translate(agent, err) from None
    return reply.state


def run_restore(ctl: Controller, req: controller_pb2.RestoreRequest) -> Iterator[controller_pb2.JobEvent]:
    repo = ctl.repo()
    hist = ctl.history()
    sid = plan_restore(req.id or "latest", list(req.components), req.target, hist).snapshot
    manifest = repo.load_manifest(sid)
    kinds = manifest.kinds()
    plan = plan_restore(sid, list(req.components), req.target, hist, kinds, req.force, req.agent)
    where = f"into {plan.target}" if plan.target else "in place"
    if req.dry_run:
        steps = dry_run_steps(plan, manifest, ctl.cfg.app_services if not plan.target else ())
        yield events.result(f"dry run: would restore {plan.snapshot} {where}",
                            {"snapshot": plan.snapshot, "components": list(plan.components), "steps": steps})
        return
    yield events.log(f"restore {plan.snapshot}: {', '.join(plan.components)} {where}")
    apps = ctl.cfg.app_services if not plan.target else ()
    with locks.hold_all(ctl.state_dir, [f"component-{n}" for n in plan.components], f"restore {plan.snapshot}"):
        for app in apps:
            yield events.log(f"stopping application {app.service} on {app.agent}")
            control_service(ctl, app.agent, app.service, "stop")
        results = yield from restore_components(ctl, repo, manifest, plan)
        for app in apps:
            yield events.log(f"starting application {app.service} on {app.agent}")
            control_service(ctl, app.agent, app.service, "start")
    bad = {n: r["mismatches"] for n, r in results.items() if r["mismatches"]}
    if bad:
        raise errors.VerificationFailed(f"restored data differs from the snapshot's facts: {bad}")
    files = sum(r["files"] for r in results.values())
    yield events.result(f"restored {plan.snapshot} ({files} files) {where}",
                        {"snapshot": plan.snapshot, "components": results})
