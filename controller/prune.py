"""The prune job: plan, show the plan, then (unless dry-run) reclaim the space no snapshot needs.

In: the repository, the pack staging directory, the repack threshold. Out: JobEvents; the
result holds the plan (packs to delete and repack, bytes reclaimed) and what was done.
The order of the work and its safety beside running backups: docs/FORMAT.md "Prune".
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator

from ragbackup.repo import inflight
from ragbackup.repo.prune import Pruner
from ragbackup.repo.repository import Repository
from ragbackup.v1 import controller_pb2

from ragbackup.controller import events


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _plan_text(p) -> str:
    return (f"plan: {p.snapshots} snapshot(s), {p.referenced} referenced blob(s), {p.packs} pack(s) "
            f"({_human(p.bytes)}); delete {len(p.delete)} pack(s) ({_human(sum(p.delete.values()))}), repack "
            f"{len(p.repack)} ({_human(sum(p.repack.values()))}, {_human(p.repack_live_bytes)} live), "
            f"{len(p.unindexed)} unindexed ({_human(sum(p.unindexed.values()))}); "
            f"reclaims {_human(p.reclaim)}")


def _deferred_text(done: dict) -> str:
    """'; N pack(s) left for the next prune: ...' when readers outlasted the wait, else ''."""
    if not done.get("packs_deferred"):
        return ""
    return (f"; {done['packs_deferred']} pack(s) ({_human(done['bytes_deferred'])}) left for the next prune: "
            f"{', '.join(done['deferred_for'])} still reading after {done['reader_wait_s']:g} s")


def _threaded(work, reports: queue.Queue) -> threading.Thread:
    """Run `work` on a thread so its progress reports stream while it runs."""
    def target():
        try:
            reports.put(("done", work()))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the job's thread
            reports.put(("error", exc))
    t = threading.Thread(target=target, name="prune", daemon=True)
    t.start()
    return t


def _pump(work, reports: queue.Queue) -> Iterator[controller_pb2.JobEvent]:
    """Stream `work`'s progress; if the caller goes away, the step still ends before the lock is let go."""
    t = _threaded(work, reports)
    try:
        while True:
            kind, value = reports.get()
            if kind == "progress":
                yield events.progress(*value)
            elif kind == "error":
                raise value
            else:
                return value
    finally:
        t.join()


def run_prune(repo: Repository, staging: str, repack_pct: float, dry_run: bool,
              reader_wait: float) -> Iterator[controller_pb2.JobEvent]:
    reports: queue.Queue = queue.Queue()

    def report(stage: str, done: int, total: int) -> None:
        reports.put(("progress", (stage, done, total, "")))

    with Pruner(repo, inflight.for_repository(repo.id), staging, repack_pct, report,
                reader_wait=reader_wait) as pruner:
        plan = yield from _pump(pruner.plan, reports)
        yield events.log(_plan_text(plan))
        done = {} if dry_run else (yield from _pump(pruner.execute, reports))
    d = {"dry_run": dry_run, "repack_pct": repack_pct, "plan": plan.as_dict(), "done": done}
    if dry_run:
        summary = f"dry run: {_plan_text(plan)}"
    else:
        summary = (f"pruned: deleted {done['packs_deleted']} pack(s), repacked {done['packs_repacked']} into "
                   f"{done['packs_written']}, rewrote {done['index_rewritten']} index object(s); reclaimed "
                   f"{_human(done['bytes_deleted'] - done['bytes_written'])}")
    yield events.result(summary, d)
