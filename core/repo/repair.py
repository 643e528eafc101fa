"""Index repair: rewrite the index from the packs' own headers.

In: an opened Repository (the caller holds the repository lock exclusively). Out:
new `index/<id>` objects naming every stored pack no readable index object names,
written before the damaged index objects they replace are deleted, and a
`RepairResult` saying what was (or, with dry_run, would be) done. Next: the
index cache is synced, so the running controller uses the new objects at once.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Iterator

from ragbackup import errors
from ragbackup.repo.index import encode_index, read_index
from ragbackup.repo.packs import BlobLocation, read_header
from ragbackup.repo.repository import Repository

log = logging.getLogger("ragbackup.repo")

REPAIR_PACKS = 256  # packs named by one new index object (bounded memory, as the writer's INDEX_PACKS)


@dataclass
class RepairResult:
    dry_run: bool
    index_objects: int = 0  # readable index objects, kept as they are
    damaged_index: dict[str, str] = field(default_factory=dict)  # name -> reason; deleted unless dry_run
    packs_described: int = 0  # packs read from their headers and named by a new index object
    blobs_described: int = 0
    unreadable_packs: dict[str, str] = field(default_factory=dict)  # pack -> why its header cannot be read
    new_objects: int = 0  # new index objects (written unless dry_run)
    written: list[str] = field(default_factory=list)  # names of the new index objects written

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "index_objects": self.index_objects,
                "damaged_index_objects": self.damaged_index, "packs_described": self.packs_described,
                "blobs_described": self.blobs_described, "unreadable_packs": self.unreadable_packs,
                "new_index_objects": self.new_objects, "written_index_objects": self.written}

    def summary(self) -> str:
        verb = ("would write", "would delete") if self.dry_run else ("wrote", "deleted")
        text = (f"index repair: {self.index_objects} readable index object(s) kept; "
                f"{self.packs_described} pack(s) ({self.blobs_described} blobs) described from their headers, "
                f"{verb[0]} {self.new_objects} "
                f"new index object(s); {verb[1]} {len(self.damaged_index)} damaged index object(s)"
                + (f" ({', '.join(sorted(self.damaged_index))})" if self.damaged_index else ""))
        if self.unreadable_packs:
            text += f"; {len(self.unreadable_packs)} pack(s) with unreadable headers: " + \
                ", ".join(sorted(self.unreadable_packs))
        return text


def _readable_index(repo: Repository, result: RepairResult) -> set[str]:
    """Packs named by the readable index objects; damaged ones recorded in `result`."""
    named: set[str] = set()
    for obj in repo.storage.list("index/"):
        name = obj.key.split("/", 1)[1]
        try:
            entries = read_index(repo.cipher, name, repo.storage.get(obj.key))
        except errors.IntegrityError as exc:
            result.damaged_index[name] = exc.message
            continue
        except errors.NotFound:
            continue
        result.index_objects += 1
        named.update(pid for pid, _, _ in entries)
    return named


def _described(repo: Repository, packs: list[tuple[str, int]],
               result: RepairResult) -> Iterator[tuple[str, int, list[BlobLocation]]]:
    for pid, size in packs:
        try:
            locs = read_header(repo.storage, repo.cipher, pid, size)
        except errors.IntegrityError as exc:
            result.unreadable_packs[pid] = exc.message
            continue
        result.packs_described += 1
        result.blobs_described += len(locs)
        yield pid, size, locs


def repair_index(repo: Repository, dry_run: bool = False) -> RepairResult:
    """Name every stored pack no readable index object names, then delete the damaged index objects.

    Crash-safe: each new object is complete when stored (an index object never names
    a pack that is not stored), and a damaged object is deleted only after every new
    one is stored; a run cut short leaves both, and the next run finishes the work.
    """
    result = RepairResult(dry_run)
    named = _readable_index(repo, result)
    todo = sorted((o.key.rsplit("/", 1)[-1], o.size) for o in repo.storage.list("data/"))
    todo = [(pid, size) for pid, size in todo if pid not in named and not pid.startswith(".")]
    for i in range(0, len(todo), REPAIR_PACKS):
        part = list(_described(repo, todo[i:i + REPAIR_PACKS], result))
        result.new_objects += bool(part)
        if part and not dry_run:
            name = uuid.uuid4().hex
            repo.storage.put(f"index/{name}", encode_index(repo.cipher, part))
            result.written.append(name)
    if not dry_run:
        for name in sorted(result.damaged_index):
            repo.storage.delete(f"index/{name}")
            log.warning("deleted damaged index object index/%s (its packs are named by new index objects)", name)
        repo.sync_index()
    return result
