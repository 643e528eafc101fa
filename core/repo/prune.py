"""Prune: remove what no snapshot references, in an order that loses nothing a snapshot needs.

In: an opened Repository (index cache synced), the in-flight registry of running
jobs, a repack threshold, the reading jobs and how long to wait for them. Out: a
`PrunePlan` (packs to delete and repack, bytes to reclaim) and, unless dry-run, its
execution: repacked packs, then index objects, then the swap in the index cache, then
deletions, once no job that began reading before the swap still runs (or, after the
wait, none: the next prune deletes them; docs/FORMAT.md "Prune").
"""
from __future__ import annotations

import os
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ragbackup import faults
from ragbackup.repo.index import decode_index, encode_index
from ragbackup.repo.inflight import InFlight
from ragbackup.repo.packs import BlobLocation, PackWriter, pack_key, read_runs
from ragbackup.repo.refs import RefSet, add_snapshot
from ragbackup.repo.repository import Repository

INDEX_PACKS = 64  # packs named by one index object prune writes
READER_WAIT = 600.0  # seconds prune waits for reading jobs before it leaves their packs to the next prune
READ_SPAN = 8 * 1024 * 1024  # bytes of back-to-back live blobs read with one request when repacking
Report = Callable[[str, int, int], None]  # (stage, done, total)


def _quiet(stage: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class PackUse:
    """One indexed pack: its size and how much of it the snapshots still use."""

    id: str
    size: int
    blobs: int
    live: int
    blob_bytes: int
    live_bytes: int

    @property
    def garbage_pct(self) -> float:
        """Share of the pack taken by blobs no snapshot references (headers are not garbage)."""
        return 100.0 * (self.blob_bytes - self.live_bytes) / self.size if self.size else 100.0


@dataclass
class PrunePlan:
    snapshots: int = 0
    referenced: int = 0  # distinct blob ids the snapshots name
    packs: int = 0
    bytes: int = 0
    delete: dict[str, int] = field(default_factory=dict)  # indexed packs with no live blob -> size
    repack: dict[str, int] = field(default_factory=dict)  # mostly garbage -> size
    repack_live_bytes: int = 0
    unindexed: dict[str, int] = field(default_factory=dict)  # packs no index names (interrupted jobs)
    protected: int = 0  # packs skipped because a running job wrote them
    index_files: list[str] = field(default_factory=list)

    @property
    def reclaim(self) -> int:
        return (sum(self.delete.values()) + sum(self.unindexed.values()) + sum(self.repack.values())
                - self.repack_live_bytes)

    def as_dict(self) -> dict:
        return {"snapshots": self.snapshots, "referenced_blobs": self.referenced, "packs": self.packs,
                "bytes": self.bytes, "delete_packs": sorted(self.delete), "repack_packs": sorted(self.repack),
                "unindexed_packs": sorted(self.unindexed), "bytes_delete": sum(self.delete.values()),
                "bytes_repack": sum(self.repack.values()), "bytes_repack_live": self.repack_live_bytes,
                "bytes_unindexed": sum(self.unindexed.values()), "bytes_reclaimed": self.reclaim,
                "protected_packs": self.protected}


def classify(uses: list[PackUse], repack_pct: float, protected: set[str]) -> tuple[list[PackUse], list[PackUse]]:
    """Pure: (packs to delete, packs to repack). A pack a running job wrote is neither.

    Delete: no live blob. Repack: more than `repack_pct` % of its bytes garbage
    (0 repacks any pack with garbage, 100 never repacks).
    """
    delete, repack = [], []
    for u in uses:
        if u.id in protected:
            continue
        if u.live == 0:
            delete.append(u)
        elif u.live < u.blobs and u.garbage_pct > repack_pct:
            repack.append(u)
    return delete, repack


class _Usage:
    """A second connection to the index cache with the reference set attached."""

    def __init__(self, repo: Repository, refs: RefSet):
        self._db = sqlite3.connect(os.path.join(repo.cache_dir, "index.sqlite"), check_same_thread=False)
        self._db.execute("ATTACH DATABASE ? AS r", (refs.path,))

    def packs(self) -> Iterator[PackUse]:
        q = ("SELECT p.id, p.size, count(b.id), count(x.id), coalesce(sum(b.length), 0), coalesce(sum(CASE WHEN x.id IS NOT NULL "
             "THEN b.length END), 0) FROM packs p LEFT JOIN blobs b ON b.pack_num = p.num "
             "LEFT JOIN r.refs x ON x.id = b.id GROUP BY p.id")
        for row in self._db.execute(q):
            yield PackUse(*row)

    def blobs(self, pack: str) -> list[tuple[BlobLocation, bool]]:
        """Every indexed blob of `pack`, with whether a snapshot references it, in pack order."""
        q = ("SELECT b.id, b.type, b.flags, b.offset, b.length, b.raw_length, x.id IS NOT NULL FROM blobs b "
             "LEFT JOIN r.refs x ON x.id = b.id WHERE b.pack_num = (SELECT num FROM packs WHERE id = ?) ORDER BY b.offset")
        return [(BlobLocation(*r[:6], pack), bool(r[6])) for r in self._db.execute(q, (pack,))]

    def close(self) -> None:
        self._db.close()


class Pruner:
    """One prune run over `repo`: `plan()` first, then `execute()` unless dry-run."""

    def __init__(self, repo: Repository, inflight: InFlight, staging: str,  # noqa: PLR0913 (the run's settings)
                 repack_pct: float = 50, report: Report = _quiet, reader_wait: float = READER_WAIT):
        self.repo, self.inflight, self.staging = repo, inflight, staging
        self.repack_pct, self.report = repack_pct, report
        self.readers, self.reader_wait = inflight.readers, reader_wait
        self.refs: RefSet | None = None
        self._usage: _Usage | None = None
        self.plan_: PrunePlan | None = None
        self.result: dict = {}

    def __enter__(self) -> "Pruner":
        self.inflight.prune_started()  # before snapshots are listed: later commits stay claimed
        return self

    def __exit__(self, *exc) -> None:
        if self._usage is not None:
            self._usage.close()
        if self.refs is not None:
            self.refs.close()
        self.inflight.prune_ended()

    # --- plan ------------------------------------------------------------------------

    def plan(self) -> PrunePlan:
        repo, p = self.repo, PrunePlan()
        repo.sync_index()
        p.index_files = sorted(repo.index.known_index_files())
        self.refs = RefSet(os.path.join(repo.cache_dir, "prune-refs.sqlite"))
        sids = repo.snapshot_ids()
        p.snapshots = len(sids)
        for n, sid in enumerate(sids, 1):
            add_snapshot(repo, self.refs, repo.load_snapshot(sid))
            self.report("read snapshots", n, len(sids))
        p.referenced = self.refs.total()
        self._usage = _Usage(repo, self.refs)
        uses = list(self._usage.packs())
        p.packs, p.bytes = len(uses), sum(u.size for u in uses)
        protected = self.inflight.protected_packs()
        p.protected = sum(u.id in protected for u in uses)
        delete, repack = classify(uses, self.repack_pct, protected)
        p.delete = {u.id: u.size for u in delete}
        p.repack = {u.id: u.size for u in repack}
        p.repack_live_bytes = sum(u.live_bytes for u in repack)
        indexed = {u.id for u in uses}
        p.unindexed = {o.key.rsplit("/", 1)[-1]: o.size for o in repo.storage.list("data/")
                       if o.key.rsplit("/", 1)[-1] not in indexed and o.key.rsplit("/", 1)[-1] not in protected
                       and not o.key.rsplit("/", 1)[-1].startswith(".")}
        self.plan_ = p
        return p

    # --- execute ---------------------------------------------------------------------

    def execute(self) -> dict:
        """Repack, write index objects, swap the cache, delete; each step leaves a valid repository."""
        p = self.plan_
        assert p is not None and self._usage is not None
        moved = self._repack(list(p.repack))
        new_names = self._write_packs_index(moved)
        dropped = set(p.delete) | set(p.repack)
        affected = self._rewrite_affected(p.index_files, dropped)
        final, rescued = self._swap(dropped, {loc.id for _, _, locs in moved for loc in locs}, affected, new_names)
        swapped = self.readers.mark()  # readers that began before this may hold locations in the old packs
        self.repo.storage.delete_many([f"index/{n}" for n in affected])
        self.report("delete old index objects", len(affected), len(affected))
        garbage = sorted(final | self._unindexed_still_garbage())
        still_reading = self.readers.wait_before(swapped, self.reader_wait, self._waiting) if garbage else []
        deferred, garbage = (garbage, []) if still_reading else ([], garbage)
        self._delete_packs(garbage)
        sizes = {**p.delete, **p.repack, **p.unindexed}
        self.result = {"packs_deleted": len(garbage), "packs_repacked": len(set(p.repack) & final),
                       "packs_written": len(moved), "index_rewritten": len(affected), "packs_rescued": rescued,
                       "bytes_deleted": sum(sizes.get(g, 0) for g in garbage),
                       "bytes_written": sum(size for _, size, _ in moved),
                       "packs_deferred": len(deferred), "bytes_deferred": sum(sizes.get(g, 0) for g in deferred),
                       "deferred_for": still_reading, "reader_wait_s": self.reader_wait}
        return self.result

    def _waiting(self, readers: list[str]) -> None:
        self.report(f"wait up to {self.reader_wait:g} s for {', '.join(readers)} (reading packs this prune replaces)",
                    0, len(readers))

    def _delete_packs(self, garbage: list[str]) -> None:
        """Delete the packs no index names any more, in two steps (a crash point sits between them)."""
        half = (len(garbage) + 1) // 2
        self.repo.storage.delete_many([pack_key(pid) for pid in garbage[:half]])
        faults.point("prune.mid_delete")
        self.repo.storage.delete_many([pack_key(pid) for pid in garbage[half:]])
        self.report("delete packs", len(garbage), len(garbage))

    def _repack(self, packs: list[str]) -> list[tuple[str, int, list[BlobLocation]]]:
        """Copy the live blobs of `packs` (sealed bytes as they are) into new packs, stored but not indexed."""
        out: list[tuple[str, int, list[BlobLocation]]] = []
        writer: PackWriter | None = None
        os.makedirs(self.staging, mode=0o750, exist_ok=True)
        for n, pid in enumerate(packs, 1):
            for loc, sealed in self._live_blobs(pid):
                if writer is None:
                    writer = PackWriter(self.staging, self.repo.cipher)
                writer.add(loc.id, loc.type, loc.flags, loc.raw_length, sealed)
                if writer.size >= self.repo.params.pack_size:
                    out.append(self._store(writer))
                    writer = None
            self.report("repack", n, len(packs))
        if writer is not None:
            out.append(self._store(writer))
        return out

    def _to_copy(self, pid: str) -> list[BlobLocation]:
        assert self._usage is not None
        with self.inflight.guard:
            return [loc for loc, live in self._usage.blobs(pid) if live or self.inflight.seen(loc.id)]

    def _live_blobs(self, pid: str) -> Iterator[tuple[BlobLocation, memoryview]]:
        """The sealed bytes of the blobs to copy out of `pid`, read in runs of back-to-back blobs
        (a mostly-garbage pack is not read whole: its live ranges are)."""
        for run in read_runs(self._to_copy(pid), READ_SPAN):
            first = run[0]
            data = memoryview(self.repo.storage.get_range(pack_key(pid), first.offset,
                                                          run[-1].offset + run[-1].length - first.offset))
            for loc in run:
                yield loc, data[loc.offset - first.offset:loc.offset - first.offset + loc.length]

    def _store(self, writer: PackWriter) -> tuple[str, int, list[BlobLocation]]:
        pack_id, locs = writer.finish()
        try:
            adopt = getattr(self.repo.storage, "adopt_file", None)
            if adopt is not None:
                adopt(pack_key(pack_id), writer.path)
            else:
                self.repo.storage.put_file(pack_key(pack_id), writer.path)
        finally:
            if os.path.exists(writer.path):
                os.unlink(writer.path)
        return pack_id, writer.size, locs

    def _put_index(self, packs: list[tuple[str, int, list[BlobLocation]]]) -> str:
        name = uuid.uuid4().hex
        self.repo.storage.put(f"index/{name}", encode_index(self.repo.cipher, packs))
        return name

    def _write_packs_index(self, moved: list[tuple[str, int, list[BlobLocation]]]) -> list[str]:
        return [self._put_index(moved[i:i + INDEX_PACKS]) for i in range(0, len(moved), INDEX_PACKS)]

    def _rewrite_affected(self, names: list[str], dropped: set[str]) -> list[str]:
        """Write a copy without `dropped` of every index object naming one; returns the objects replaced."""
        affected = []
        for n, name in enumerate(names, 1):
            packs = list(decode_index(self.repo.cipher, self.repo.storage.get(f"index/{name}")))
            if any(pid in dropped for pid, _, _ in packs):
                kept = [x for x in packs if x[0] not in dropped]
                if kept:
                    self.repo.index.add_index_file(self._put_index(kept), kept)
                affected.append(name)
            self.report("rewrite index", n, len(names))
        return affected

    def _swap(self, dropped: set[str], moved_ids: set[bytes], affected: list[str],
              new_names: list[str]) -> tuple[set[str], int]:
        """Under the guard: keep any pack holding a blob a running job relies on, then update the cache.

        After this, a job asking for a dropped blob is told it is missing and stores it again.
        """
        assert self._usage is not None
        moved = [(n, list(decode_index(self.repo.cipher, self.repo.storage.get(f"index/{n}")))) for n in new_names]
        with self.inflight.guard:
            rescue = sorted(pid for pid in dropped if any(
                loc.id not in moved_ids and self.inflight.seen(loc.id) for loc, _ in self._usage.blobs(pid)))
            if rescue:
                self.repo.index.add_index_file(*self._rescue_index(rescue))
            final = dropped - set(rescue)
            self.repo.index.replace_index_files(affected, moved, final)
        return final, len(rescue)

    def _rescue_index(self, packs: list[str]) -> tuple[str, list]:
        assert self._usage is not None and self.plan_ is not None
        sizes = {**self.plan_.delete, **self.plan_.repack}
        content = [(pid, sizes[pid], [loc for loc, _ in self._usage.blobs(pid)]) for pid in packs]
        return self._put_index(content), content

    def _unindexed_still_garbage(self) -> set[str]:
        assert self.plan_ is not None
        return set(self.plan_.unindexed) - self.inflight.protected_packs()
