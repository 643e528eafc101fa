"""Runs a restore drill: every component of a snapshot streamed to an agent's Drill call.

In: a DrillRequest, the Controller, the RTO and the cancel event. Out: progress and log
JobEvents, then a DrillRun: the checks each agent ran (or the failure to reach it or to read
the data), the bytes and files sent, and whether the RTO ran out. Two components run at once,
as in a restore. Each call's deadline is what is left of the RTO, so a drill never runs much
longer than its objective; the agent cleans up when a call ends.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Generator

import grpc

from ragbackup import errors
from ragbackup.repo.manifest import Manifest
from ragbackup.repo.repository import Repository
from ragbackup.v1 import agent_pb2, controller_pb2

from ragbackup.controller import events
from ragbackup.controller.component_spec import component_spec
from ragbackup.controller.policy.drill import Check
from ragbackup.controller.policy.plan import resolve_snapshot
from ragbackup.controller.restore import _Sender, choose_agent, entry_form
from ragbackup.controller.state import Controller

POLL_S = 0.2
PARALLEL_COMPONENTS = 2  # as a restore runs them


@dataclass
class DrillRun:
    """What the drill did: the snapshot, the agent per component, the checks, the volume sent."""

    snapshot: str
    snapshot_time: str
    agents: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # per component, as the agent measured it
    checks: list[Check] = field(default_factory=list)
    bytes_sent: int = 0
    files: int = 0
    deadline_hit: bool = False


@dataclass
class _Call:
    """One component's Drill call in flight."""

    name: str
    agent: str
    sender: _Sender
    future: grpc.Future


class _Driller:
    """One drill's calls: the snapshot, its repository, the cancel event and the DrillRun it fills."""

    def __init__(self, ctl: Controller, repo: Repository, manifest: Manifest, cancel: threading.Event,
                 run: DrillRun):
        self.ctl, self.repo, self.manifest, self.cancel, self.run = ctl, repo, manifest, cancel, run
        self.total = sum(c.bytes_total for c in manifest.components.values())

    def _start(self, name: str, agent: str, timeout_s: float) -> tuple[_Sender, grpc.Future]:
        m = self.manifest.components[name]
        cfg = self.ctl.cfg.components.get(name)
        spec = component_spec(name, m.kind, cfg.path if cfg else m.path, (), cfg.settings if cfg else None)
        start = agent_pb2.RestoreStart(component=spec, id_key=self.repo.id_key, snapshot_id=self.manifest.id,
                                       facts_json=json.dumps(m.facts), dictionaries=self.repo.dictionaries().all())
        os.makedirs(self.ctl.staging_dir, mode=0o750, exist_ok=True)
        sender = _Sender(self.repo, start, m.tree_ids(), entry_form(self.ctl, agent), self.ctl.staging_dir)
        return sender, self.ctl.agents.stub(agent).Drill.future(iter(sender), timeout=timeout_s)

    def start(self, name: str, agent: str, timeout_s: float) -> _Call:
        sender, future = self._start(name, agent, timeout_s)
        return _Call(name, agent, sender, future)

    def finish(self, call: _Call) -> None:
        """Take a finished call's checks (or why the agent could not run them) into the run."""
        run = self.run
        run.bytes_sent += call.sender.sent
        try:
            res: agent_pb2.DrillResult = call.future.result()
        except grpc.RpcError as err:
            run.checks += self._failure(call, err)
            return
        run.files += res.files
        run.seconds[call.name] = res.seconds
        run.checks += [Check(call.name, c.name, c.ok, c.detail) for c in res.checks]

    def _failure(self, call: _Call, err: grpc.RpcError) -> list[Check]:
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            self.run.deadline_hit = True
            return []
        error = call.sender.error
        if isinstance(error, errors.RagBackupError):  # the snapshot's data could not be read
            return [Check(call.name, "read", False, f"repository: {error.message}")]
        if error is not None:
            raise error from None
        exc = self.ctl.agents.translate(call.agent, err)
        return [Check(call.name, "drill", False, f"agent {call.agent}: {exc.message}")]


def _agent_for(ctl: Controller, manifest: Manifest, name: str, requested: str) -> str:
    cfg = ctl.cfg.components.get(name)
    return choose_agent(name, cfg.agent if cfg else manifest.components[name].agent, requested,
                        list(ctl.cfg.agents))


def run_drill(ctl: Controller, req: controller_pb2.DrillRequest, rto_s: float, cancel: threading.Event,
              monotonic=time.monotonic) -> Generator[controller_pb2.JobEvent, None, DrillRun]:
    """Drill the snapshot's components, PARALLEL_COMPONENTS at a time (as a restore runs), within `rto_s`.

    The first error that is not a finding (cancellation, say) cancels the calls still running;
    their agents clean up.
    """
    began = monotonic()
    source = ctl.source(req.source)
    repo, _ = ctl.synced(source) if source != "primary" else (ctl.repo(), None)
    sid = resolve_snapshot(req.id or "latest", ctl.history(source), [])
    manifest = repo.load_manifest(sid)
    run = DrillRun(sid, manifest.time)
    queue = sorted(manifest.components)
    run.agents = {n: _agent_for(ctl, manifest, n, req.agent) for n in queue}
    driller = _Driller(ctl, repo, manifest, cancel, run)
    yield events.log(f"drill {sid}: {', '.join(queue)} (RTO {rto_s:.0f}s)")
    running: list[_Call] = []
    try:
        while queue or running:
            while queue and len(running) < PARALLEL_COMPONENTS and not run.deadline_hit:
                left = rto_s - (monotonic() - began)
                if left <= 0:
                    run.deadline_hit = True
                    break
                name = queue.pop(0)
                yield events.log(f"drilling {name} on agent {run.agents[name]}")
                running.append(driller.start(name, run.agents[name], left))
            if run.deadline_hit:
                queue.clear()
            if cancel.is_set():
                raise errors.Cancelled("drill cancelled")
            time.sleep(POLL_S)
            yield events.progress("drill", run.bytes_sent + sum(c.sender.sent for c in running), driller.total, "B")
            for call in [c for c in running if c.future.done()]:
                running.remove(call)
                driller.finish(call)
                yield events.log(_outcome_line(run, call.name))
    finally:
        for call in running:
            call.future.cancel()
    return run


def _outcome_line(run: DrillRun, name: str) -> str:
    failed = [c for c in run.checks if c.component == name and not c.ok]
    return f"{name}: " + ("; ".join(f"{c.name} FAILED: {c.detail}" for c in failed) or "checks passed")
