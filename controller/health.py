"""`ragctl health`: the pre-recovery assessment across the controller, repository and agents.

In: the Controller (config, repository, catalog, agent clients). Out: a list of
named checks (ok + detail): repository opens, backup volume free space, newest
backup age, whether the schedule can meet the RPO, each agent reachable, each component's service answering. Gathering
does I/O; `judge_*` functions are pure thresholds.
"""
from __future__ import annotations

import datetime as _dt
import shutil
from dataclasses import dataclass

import grpc

from ragbackup import clock, errors
from ragbackup.v1 import agent_pb2

from ragbackup.controller.backup import component_spec
from ragbackup.controller.policy.schedule import rpo_exposure, rpo_findings, span_text, worst_gap
from ragbackup.controller.state import Controller

MIN_FREE_RATIO = 0.10
MAX_BACKUP_AGE = _dt.timedelta(hours=25)
AGENT_TIMEOUT = 15.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def judge_free_space(free: int, total: int) -> Check:
    ratio = free / total if total else 0.0
    return Check("backup volume", ratio >= MIN_FREE_RATIO,
                 f"{ratio:.1%} free ({free // (1024 * 1024)} MiB of {total // (1024 * 1024)} MiB)")


def judge_backup_age(newest: _dt.datetime | None, now: _dt.datetime) -> Check:
    if newest is None:
        return Check("newest backup", False, "no backup exists")
    age = now - newest
    hours = age.total_seconds() / 3600
    return Check("newest backup", age <= MAX_BACKUP_AGE, f"{hours:.1f} h old (limit {MAX_BACKUP_AGE.total_seconds() / 3600:.0f} h)")


def judge_schedule(cfg, history: list, now: _dt.datetime) -> Check:
    """Can the configured schedule meet the RPO? The newest backup's age rides along in the detail."""
    findings = rpo_findings(cfg.schedule, cfg.objectives)
    _, exposure = rpo_exposure(history, now, cfg.objectives)
    if findings:
        return Check("schedule vs RPO", False, f"{findings[0]}; {exposure}")
    return Check("schedule vs RPO", True, f"backups every {span_text(worst_gap(cfg.schedule))} meet the RPO of "
                                          f"{span_text(cfg.objectives.rpo)}; {exposure}")


def _repository_checks(ctl: Controller) -> list[Check]:
    try:
        repo = ctl.repo()
    except errors.RagBackupError as exc:
        return [Check("repository", False, exc.message)]
    out = [Check("repository", True, f"{repo.storage.describe()} opens ({len(ctl.catalog.ids())} snapshots)")]
    if ctl.cfg.repository.type == "local":
        du = shutil.disk_usage(ctl.cfg.repository.path)
        out.append(judge_free_space(du.free, du.total))
    hist = [h for h in ctl.history() if h.kind != "import"]  # an import is not a fresh backup
    now = clock.SYSTEM.now()
    out.append(judge_backup_age(max((h.time for h in hist), default=None), now))
    out.append(judge_schedule(ctl.cfg, hist, now))
    return out


def _agent_checks(ctl: Controller, agent: str) -> list[Check]:
    names = [n for n, c in ctl.cfg.components.items() if c.agent == agent]
    req = agent_pb2.HealthRequest(components=[component_spec(ctl, n) for n in names])
    try:
        reply = ctl.agents.stub(agent).Health(req, timeout=AGENT_TIMEOUT)
    except errors.RagBackupError as exc:
        return [Check(f"agent {agent}", False, exc.message)]
    except grpc.RpcError as err:
        return [Check(f"agent {agent}", False, ctl.agents.translate(agent, err).message)]
    out = [Check(f"agent {agent}", True, f"reachable ({reply.hostname}, version {reply.version})")]
    out += [Check(f"component {c.name}", c.ok, c.detail) for c in reply.checks]
    return out


def assess(ctl: Controller) -> list[Check]:
    checks = _repository_checks(ctl)
    for agent in ctl.cfg.agents:
        checks += _agent_checks(ctl, agent)
    return checks
