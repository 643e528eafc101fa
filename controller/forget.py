"""The forget job: apply the retention policy (or forget named snapshots), deleting snapshot objects only.

In: the repository, the catalog, `[retention]` and "now" from the clock. Out: JobEvents
and a result naming, per snapshot, kept or forgotten and the rule(s) why. The data a
forgotten snapshot used stays until prune (docs/FORMAT.md "Forget and prune").
"""
from __future__ import annotations

from typing import Iterator

from ragbackup import clock, errors
from ragbackup.config import RetentionConfig
from ragbackup.repo.repository import Repository
from ragbackup.v1 import controller_pb2

from ragbackup.controller import events
from ragbackup.controller.catalog import Catalog
from ragbackup.controller.policy.retention import (DRILL_PASSED, Policy, Snapshot, Verdict, apply_retention, forget_ids,
                                                   parse_duration)


def policy_of(cfg: RetentionConfig) -> Policy:
    return Policy(keep_within=parse_duration(cfg.keep_within) if cfg.keep_within else None,
                  keep_last=cfg.keep_last, keep_hourly=cfg.keep_hourly, keep_daily=cfg.keep_daily,
                  keep_weekly=cfg.keep_weekly, keep_monthly=cfg.keep_monthly, keep_yearly=cfg.keep_yearly,
                  rpo=parse_duration(cfg.rpo) if cfg.rpo else None, timezone=cfg.timezone)


def snapshots_of(catalog: Catalog, drilled: frozenset[str] = frozenset()) -> list[Snapshot]:
    """The catalog's snapshots for the policy; those a successful drill restored carry DRILL_PASSED."""
    return [Snapshot(r.id, clock.parse_iso(r.time), r.kind, tuple(r.components),
                     (DRILL_PASSED,) if r.id in drilled else ())
            for r in catalog.list()]


def decide(catalog: Catalog, cfg: RetentionConfig, ids: list[str], now,
           drilled: frozenset[str] = frozenset()) -> list[Verdict]:
    """Verdicts for every snapshot: by `ids` when given, else by the configured policy.

    UsageError when neither ids nor a policy is given (forgetting by an empty policy would keep
    only what the invariants keep: most likely a missing [retention] table).
    """
    if not ids and not cfg.has_policy:
        raise errors.UsageError("no retention policy: set keep_* in the controller's [retention] table, "
                                "or name the snapshots to forget")
    policy = policy_of(cfg)
    snaps = snapshots_of(catalog, drilled)
    return forget_ids(snaps, ids, policy, now) if ids else apply_retention(snaps, policy, now)


def run_forget(repo: Repository, catalog: Catalog, cfg: RetentionConfig,  # noqa: PLR0913 (the job's inputs)
               req: controller_pb2.ForgetRequest, now,
               drilled: frozenset[str] = frozenset()) -> Iterator[controller_pb2.JobEvent]:
    """Delete the snapshot objects the verdicts forget, each catalog row first (a crash between the
    two leaves an object the next listing adds back, never a snapshot reported as vanished)."""
    dry_run = req.dry_run
    verdicts = decide(catalog, cfg, list(req.ids), now, drilled)
    gone = [v for v in verdicts if not v.keep]
    yield events.log(f"{len(verdicts) - len(gone)} snapshot(s) kept, {len(gone)} to forget"
                     + (" (dry run)" if dry_run else ""))
    if not dry_run:
        for n, v in enumerate(gone, 1):
            catalog.remove(v.id)
            repo.delete_snapshot(v.id)
            yield events.progress("forget", n, len(gone), "snapshots")
    summary = (f"{'would forget' if dry_run else 'forgot'} {len(gone)} of {len(verdicts)} snapshot(s); "
               f"kept {len(verdicts) - len(gone)}")
    yield events.result(summary, {"dry_run": dry_run, "now": clock.iso(now),
                                  "snapshots": [v.as_dict() for v in verdicts],
                                  "kept": sum(v.keep for v in verdicts), "forgotten": len(gone)})
