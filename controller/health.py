"""`ragctl health`: the pre-recovery assessment across the controller, repository and agents.

In: the Controller (config, repository, catalog, agent clients). Out: a list of
named checks (ok + detail): repository opens, backup volume free space, newest
backup age, whether the schedule can meet the RPO, each agent reachable, each component's service answering,
and each offsite tier: reachable (one HeadObject with short timeouts), its replication queue (length,
oldest age) and its last completed replication (`tier_rows`, for `ragctl health --json`). Gathering
does I/O; `judge_*` functions and `verdict` are pure.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import shutil
from concurrent import futures
from dataclasses import dataclass

import grpc

from ragbackup import clock, errors
from ragbackup.v1 import agent_pb2

from ragbackup.config import TierConfig
from ragbackup.controller.backup import component_spec
from ragbackup.controller.lockkeep import tier_s3_settings
from ragbackup.controller.replication_queue import TierQueue
from ragbackup.controller.policy.schedule import rpo_exposure, rpo_findings, span_text, worst_gap
from ragbackup.controller.state import Controller

AGENT_TIMEOUT = 15.0
# A tier's probe: one request, no retry, at most this long to connect and to answer (the tier's own
# timeouts when shorter), all tiers at once: `ragctl health` answers within about 15 s per outage.
TIER_PROBE_CONNECT_S, TIER_PROBE_READ_S = 5.0, 10.0
TIER_PREFIX = "tier "


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def judge_free_space(free: int, total: int, min_ratio: float) -> Check:
    """Pure: the backup volume's check, ok while at least `min_ratio` of it is free ([alerts] min_free_ratio)."""
    ratio = free / total if total else 0.0
    return Check("backup volume", ratio >= min_ratio,
                 f"{ratio:.1%} free ({free // (1024 * 1024)} MiB of {total // (1024 * 1024)} MiB)")


def judge_backup_age(newest: _dt.datetime | None, now: _dt.datetime, max_hours: float) -> Check:
    """Pure: the newest backup's check, ok while it is at most `max_hours` old ([alerts] max_backup_age_hours)."""
    if newest is None:
        return Check("newest backup", False, "no backup exists")
    hours = (now - newest).total_seconds() / 3600
    return Check("newest backup", hours <= max_hours, f"{hours:.1f} h old (limit {max_hours:g} h)")


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
        out.append(judge_free_space(du.free, du.total, ctl.cfg.alerts.min_free_ratio))
    hist = [h for h in ctl.history() if h.kind != "import"]  # an import is not a fresh backup
    now = clock.SYSTEM.now()
    out.append(judge_backup_age(max((h.time for h in hist), default=None), now, ctl.cfg.alerts.max_backup_age_hours))
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


@dataclass(frozen=True)
class TierProbe:
    """One tier's answer to the probe: reachable or not, and what it said."""

    reachable: bool
    detail: str


def probe_tier(tier: TierConfig) -> TierProbe:
    """One request with short timeouts and no retry: reachable or not, and why.

    A copy tier is asked for its `config` (HeadObject); an archive tier keeps a repository per
    set (`sets/<snapshot id>/config`, docs/ARCHIVE.md), so it is asked for its first set (one list).
    """
    from ragbackup.storage.s3 import S3Storage

    settings = dataclasses.replace(tier_s3_settings(tier), max_attempts=1,
                                   connect_timeout=min(tier.connect_timeout, TIER_PROBE_CONNECT_S),
                                   read_timeout=min(tier.read_timeout, TIER_PROBE_READ_S))
    storage = S3Storage(settings)
    try:
        if tier.kind == "archive":
            holds = next(iter(storage.list("sets/")), None) is not None
        else:
            holds = storage.exists("config")
    except errors.RagBackupError as exc:
        return TierProbe(False, exc.message)
    where = storage.describe()
    empty = ", no set yet (the archive job writes them)" if tier.kind == "archive" else \
        ", no repository yet (replication creates it)"
    return TierProbe(True, f"{where} reachable" + ("" if holds else empty))


def judge_tier(name: str, probe: TierProbe, queue: TierQueue, now: _dt.datetime) -> Check:
    """A tier's check: ok when reachable; the detail adds its queue and its last completed replication."""
    waiting = (f"{queue.depth} snapshot(s) waiting, oldest queued {span_text(_dt.timedelta(seconds=round(queue.oldest_age(now))))} ago"
               if queue.depth else "nothing waiting")
    last = f"last replicated {clock.iso(queue.last_done)}" if queue.last_done else "never replicated"
    head = probe.detail if probe.reachable else f"UNREACHABLE: {probe.detail}"
    return Check(f"{TIER_PREFIX}{name}", probe.reachable, f"{head}; {waiting}; {last}")


def tier_row(name: str, probe: TierProbe, queue: TierQueue, now: _dt.datetime) -> dict:
    """`ragctl health --json`'s per-tier data."""
    return {"tier": name, "reachable": probe.reachable, "detail": probe.detail, "queue_depth": queue.depth,
            "oldest_age_seconds": queue.oldest_age(now), "last_error": queue.last_error,
            "last_done": clock.iso(queue.last_done) if queue.last_done else ""}


def _tier_checks(ctl: Controller) -> tuple[list[Check], list[dict]]:
    from ragbackup.controller.status import replication_queues

    tiers = list(ctl.cfg.tiers.values())
    if not tiers:
        return [], []
    with futures.ThreadPoolExecutor(len(tiers), thread_name_prefix="health-tier") as pool:
        probes = list(pool.map(probe_tier, tiers))
    queues = replication_queues(ctl.cfg)
    now = clock.SYSTEM.now()
    checks = [judge_tier(t.name, p, q, now) for t, p, q in zip(tiers, probes, queues)]
    return checks, [tier_row(t.name, p, q, now) for t, p, q in zip(tiers, probes, queues)]


def verdict(checks: list[Check]) -> str:
    """"healthy"; "degraded" when only offsite tiers fail (local backups and restores still work); else "unhealthy"."""
    failed = [c for c in checks if not c.ok]
    if not failed:
        return "healthy"
    return "degraded" if all(c.name.startswith(TIER_PREFIX) for c in failed) else "unhealthy"


def assess(ctl: Controller) -> tuple[list[Check], dict]:
    """Every check, and the details `ragctl health --json` adds: the verdict and each tier's row."""
    checks = _repository_checks(ctl)
    for agent in ctl.cfg.agents:
        checks += _agent_checks(ctl, agent)
    tier_checks, rows = _tier_checks(ctl)
    checks += tier_checks
    return checks, {"status": verdict(checks), "tiers": rows}
