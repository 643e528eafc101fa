"""Runs a restore drill: every component of a snapshot streamed to an agent's Drill call, one by one.

In: a DrillRequest, the Controller, the RTO and the cancel event. Out: progress and log
JobEvents, then a DrillRun: the checks each agent ran (or the failure to reach it), the bytes
and files sent, and whether the RTO ran out. Each call's deadline is what is left of the RTO,
so a drill never runs much longer than its objective; the agent cleans up when a call ends.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Generator

import grpc

from ragbackup import errors
from ragbackup.repo.manifest import Manifest
from ragbackup.repo.repository import Repository
from ragbackup.v1 import agent_pb2, common_pb2, controller_pb2

from ragbackup.controller import events
from ragbackup.controller.drill_policy import Check
from ragbackup.controller.policy.plan import resolve_snapshot
from ragbackup.controller.restore import _Sender, choose_agent
from ragbackup.controller.state import Controller

POLL_S = 0.2


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


class _Driller:
    """One drill's calls: the snapshot, its repository, the cancel event and the DrillRun it fills."""

    def __init__(self, ctl: Controller, repo: Repository, manifest: Manifest, cancel: threading.Event,
                 run: DrillRun):
        self.ctl, self.repo, self.manifest, self.cancel, self.run = ctl, repo, manifest, cancel, run
        self.total = sum(c.bytes_total for c in manifest.components.values())

    def _start(self, name: str, agent: str, timeout_s: float) -> tuple[_Sender, grpc.Future]:
        m = self.manifest.components[name]
        cfg = self.ctl.cfg.components.get(name)
        spec = common_pb2.ComponentSpec(name=name, kind=m.kind, path=cfg.path if cfg else m.path,
                                        options_json=cfg.options_json() if cfg else "{}")
        start = agent_pb2.RestoreStart(component=spec, id_key=self.repo.id_key, snapshot_id=self.manifest.id,
                                       facts_json=json.dumps(m.facts), dictionaries=self.repo.dictionaries().all())
        sender = _Sender(self.repo, start, m.tree_ids())
        return sender, self.ctl.agents.stub(agent).Drill.future(iter(sender), timeout=timeout_s)

    def _wait(self, future: grpc.Future, sender: _Sender, name: str) -> Generator[controller_pb2.JobEvent, None, None]:
        """Progress until the call ends; cancel it (the agent cleans up) when the job is cancelled."""
        while not future.done():
            if self.cancel.is_set():
                future.cancel()
                raise errors.Cancelled(f"drill of {name} cancelled")
            time.sleep(POLL_S)
            yield events.progress("drill", self.run.bytes_sent + sender.sent, self.total, "B")

    def component(self, name: str, agent: str, timeout_s: float) -> Generator[controller_pb2.JobEvent, None, None]:
        """Drill one component on `agent`; its checks (or why the agent could not run them) go to the run."""
        run = self.run
        sender, future = self._start(name, agent, timeout_s)
        yield from self._wait(future, sender, name)
        run.bytes_sent += sender.sent
        try:
            res: agent_pb2.DrillResult = future.result()
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                run.deadline_hit = True
                return
            if isinstance(sender.error, errors.RagBackupError):  # the snapshot's data could not be read
                run.checks.append(Check(name, "read", False, f"repository: {sender.error.message}"))
                return
            if sender.error is not None:
                raise sender.error from None
            exc = self.ctl.agents.translate(agent, err)
            run.checks.append(Check(name, "drill", False, f"agent {agent}: {exc.message}"))
            return
        run.files += res.files
        run.seconds[name] = res.seconds
        run.checks += [Check(name, c.name, c.ok, c.detail) for c in res.checks]


def _agent_for(ctl: Controller, manifest: Manifest, name: str, requested: str) -> str:
    cfg = ctl.cfg.components.get(name)
    return choose_agent(name, cfg.agent if cfg else manifest.components[name].agent, requested,
                        list(ctl.cfg.agents))


def run_drill(ctl: Controller, req: controller_pb2.DrillRequest, rto_s: float, cancel: threading.Event,
              monotonic=time.monotonic) -> Generator[controller_pb2.JobEvent, None, DrillRun]:
    """Drill every component of the snapshot in turn within `rto_s`; returns what happened."""
    began = monotonic()
    repo = ctl.repo()
    sid = resolve_snapshot(req.id or "latest", ctl.history(), [])
    manifest = repo.load_manifest(sid)
    run = DrillRun(sid, manifest.time)
    names = sorted(manifest.components)
    run.agents = {n: _agent_for(ctl, manifest, n, req.agent) for n in names}
    driller = _Driller(ctl, repo, manifest, cancel, run)
    yield events.log(f"drill {sid}: {', '.join(names)} (RTO {rto_s:.0f}s)")
    for name in names:
        left = rto_s - (monotonic() - began)
        if left <= 0:
            run.deadline_hit = True
            break
        yield events.log(f"drilling {name} on agent {run.agents[name]}")
        yield from driller.component(name, run.agents[name], left)
        if run.deadline_hit:
            break
        failed = [c for c in run.checks if c.component == name and not c.ok]
        yield events.log(f"{name}: " + ("; ".join(f"{c.name} FAILED: {c.detail}" for c in failed) or "checks passed"))
    return run
