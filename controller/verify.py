"""Repository verification: every key, index and snapshot object always, every pack byte with --read-data.

In: the opened Repository and the snapshots the catalog knew whose objects are
gone. Out: a report naming damaged key, index and snapshot objects, damaged packs
and blobs, vanished snapshots, and the snapshots each affects; packs no index
names are reported as garbage (left by an interrupted backup), which is not damage.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Iterator

import zstandard

from ragbackup import errors
from ragbackup.repo import chunking
from ragbackup.repo.crypto import chunk_id, parse_key_object
from ragbackup.repo.index import RECOVERED, read_index
from ragbackup.repo.packs import blob_aad, pack_key, parse_header
from ragbackup.repo.repository import Repository
from ragbackup.repo.snapshots import tree_ids
from ragbackup.v1 import controller_pb2

from ragbackup.controller import events


@dataclass
class Report:
    snapshots: int = 0
    packs: int = 0
    blobs_checked: int = 0
    damaged_packs: dict[str, str] = field(default_factory=dict)  # pack -> reason
    damaged_blobs: set[bytes] = field(default_factory=set)
    unreadable_snapshots: dict[str, str] = field(default_factory=dict)
    affected: dict[str, list[str]] = field(default_factory=dict)  # snapshot -> reasons
    garbage_packs: list[str] = field(default_factory=list)
    damaged_dictionaries: str = ""  # why the compression dictionaries cannot be read
    damaged_index: dict[str, str] = field(default_factory=dict)  # index object name -> reason
    damaged_keys: dict[str, str] = field(default_factory=dict)  # key object -> reason
    vanished: dict[str, str] = field(default_factory=dict)  # snapshot the catalog knew -> why it is gone
    index_objects: int = 0
    # pack -> the damaged index object(s) that named it (its entries now come from its header)
    index_damage_packs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.damaged_packs or self.damaged_blobs or self.unreadable_snapshots or self.affected
                    or self.damaged_dictionaries or self.damaged_index or self.damaged_keys or self.vanished)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "snapshots": self.snapshots, "packs": self.packs,
                "blobs_checked": self.blobs_checked, "damaged_packs": self.damaged_packs,
                "damaged_blobs": sorted(b.hex() for b in self.damaged_blobs),
                "unreadable_snapshots": self.unreadable_snapshots,
                "affected_snapshots": self.affected, "garbage_packs": self.garbage_packs,
                "damaged_dictionaries": self.damaged_dictionaries, "index_objects": self.index_objects,
                "damaged_index_objects": self.damaged_index, "damaged_keys": self.damaged_keys,
                "vanished_snapshots": self.vanished}


def _check_keys(repo: Repository, report: Report) -> None:
    """Every key object must be a readable wrapped key (its secret is not needed to tell)."""
    for obj in repo.storage.list("keys/"):
        try:
            parse_key_object(obj.key, repo.storage.get(obj.key))
        except errors.NotFound:
            continue
        except errors.KeyDamaged as exc:
            report.damaged_keys[obj.key] = exc.message


def _check_index_objects(repo: Repository, report: Report) -> None:
    """Read and authenticate every index object; map the packs a damaged one covered to it.

    The cache still holds a damaged object's packs when it was loaded before the damage;
    otherwise its packs were described from their headers (RECOVERED) and any damaged
    object may have named them.
    """
    for obj in repo.storage.list("index/"):
        name = obj.key.split("/", 1)[1]
        try:
            read_index(repo.cipher, name, repo.storage.get(obj.key))
            report.index_objects += 1
        except errors.NotFound:
            continue
        except errors.IntegrityError as exc:
            report.index_objects += 1
            report.damaged_index[name] = exc.message
    if not report.damaged_index:
        return
    anyone = ", ".join(f"index/{n}" for n in sorted(report.damaged_index))
    for pid, index_file in repo.index.pack_index_files().items():
        if index_file in report.damaged_index:
            report.index_damage_packs[pid] = f"index/{index_file}"
        elif index_file == RECOVERED:
            report.index_damage_packs[pid] = anyone


def _check_pack_sizes(repo: Repository, report: Report) -> None:
    stored = {o.key.rsplit("/", 1)[-1]: o.size for o in repo.storage.list("data/")}
    indexed = dict(repo.index.packs())
    report.packs = len(indexed)
    for pid, size in indexed.items():
        if pid not in stored:
            report.damaged_packs[pid] = "missing from storage"
        elif stored[pid] != size:
            report.damaged_packs[pid] = f"size {stored[pid]} differs from indexed {size}"
    report.garbage_packs = sorted(p for p in stored if p not in indexed and not p.startswith("."))


def _read_pack(repo: Repository, pid: str, report: Report) -> None:
    """Authenticate the pack's header and every blob the index places in it."""
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        path = os.path.join(tmp, "pack")
        repo.storage.get_to_file(pack_key(pid), path)
        with open(path, "rb") as f:
            data = f.read()
    try:
        parse_header(repo.cipher, pid, data)
    except errors.IntegrityError as exc:
        report.damaged_packs.setdefault(pid, exc.message)
    for loc in repo.index.blobs_in_pack(pid):
        report.blobs_checked += 1
        try:
            plain = repo.cipher.open(memoryview(data)[loc.offset:loc.offset + loc.length], blob_aad(loc.id))
            blob = chunking.decompress(plain, loc.compressed, loc.raw_length, repo.dictionaries())
            if chunk_id(repo.id_key, blob) != loc.id:
                raise errors.IntegrityError("id mismatch")
        except (errors.IntegrityError, zstandard.ZstdError):
            report.damaged_blobs.add(loc.id)
            report.damaged_packs.setdefault(pid, "blob(s) failed authentication")


def _check_snapshot(repo: Repository, sid: str, bad_packs: set[str], report: Report) -> None:
    """Every blob a snapshot names must be indexed, in an undamaged pack, and not damaged itself."""
    try:
        manifest = repo.load_snapshot(sid)
    except errors.RagBackupError as exc:
        report.unreadable_snapshots[sid] = exc.message
        return
    reasons: set[str] = set()
    trees = tree_ids(manifest)
    try:
        for t in trees:
            _check_blob(repo, t, bad_packs, report, reasons)
        for e in repo.read_tree(trees):
            for c in e.chunks:
                _check_blob(repo, c, bad_packs, report, reasons)
    except errors.IntegrityError as exc:
        reasons.add(exc.message)
    if reasons:
        report.affected[sid] = sorted(reasons)


def _check_blob(repo: Repository, blob: bytes, bad_packs: set[str], report: Report, reasons: set[str]) -> None:
    loc = repo.index.lookup(blob)
    if loc is None:
        reasons.add("references blobs missing from the index")
    elif loc.pack in bad_packs or blob in report.damaged_blobs:
        reasons.add(f"uses damaged pack {loc.pack}")
    elif loc.pack in report.index_damage_packs:
        reasons.add(f"its index entries were in damaged index object {report.index_damage_packs[loc.pack]} "
                    "(read from pack headers until `ragctl repair index`)")


def run_verify(repo: Repository, read_data: bool,
               vanished: dict[str, str] | None = None) -> Iterator[controller_pb2.JobEvent]:
    """The Verify job; `vanished`: snapshot id -> time of snapshots the catalog knew whose object is gone."""
    report = Report()
    report.vanished = {sid: f"snapshot object snapshots/{sid} ({time or 'time unknown'}) is gone from the repository"
                       for sid, time in (vanished or {}).items()}
    yield events.log("reading key and index objects")
    _check_keys(repo, report)
    _check_index_objects(repo, report)
    yield events.log("checking packs against the index")
    _check_pack_sizes(repo, report)
    try:
        repo.dictionaries(reload=True)
    except errors.IntegrityError as exc:
        report.damaged_dictionaries = exc.message
    if read_data:
        packs = [p for p, _ in repo.index.packs() if p not in report.damaged_packs]
        for n, pid in enumerate(packs, 1):
            _read_pack(repo, pid, report)
            yield events.progress("read packs", n, len(packs), "packs")
    sids = repo.snapshot_ids()
    report.snapshots = len(sids)
    bad = set(report.damaged_packs)
    for n, sid in enumerate(sids, 1):
        _check_snapshot(repo, sid, bad, report)
        yield events.progress("check snapshots", n, len(sids), "snapshots")
    yield events.result(_summary(report, read_data), report.as_dict())
    if not report.ok:
        raise errors.IntegrityError(_summary(report, read_data))


def _summary(report: Report, read_data: bool) -> str:
    if report.ok:
        return (f"repository OK: {report.snapshots} snapshots, {report.packs} packs, "
                f"{report.index_objects} index objects"
                + (f", {report.blobs_checked} blobs read" if read_data else "")
                + (f"; {len(report.garbage_packs)} unreferenced pack(s) for prune" if report.garbage_packs else ""))
    parts = [f"{len(report.damaged_packs)} damaged pack(s) ({', '.join(sorted(report.damaged_packs)) or '-'})"]
    if report.damaged_index:
        parts.append(f"damaged index object(s) {', '.join('index/' + n for n in sorted(report.damaged_index))} "
                     "(run `ragctl repair index`)")
    if report.damaged_keys:
        parts.append(f"damaged key object(s) {', '.join(sorted(report.damaged_keys))}")
    if report.vanished:
        parts.append(f"vanished snapshot(s) {', '.join(sorted(report.vanished))}")
    if report.unreadable_snapshots:
        parts.append(f"unreadable snapshot(s) {', '.join(sorted(report.unreadable_snapshots))}")
    if report.damaged_dictionaries:
        parts.append(report.damaged_dictionaries)
    affected = sorted(set(report.affected) | set(report.unreadable_snapshots) | set(report.vanished))
    return f"repository DAMAGED: {'; '.join(parts)}; affected snapshots: {', '.join(affected) or 'none'}"
