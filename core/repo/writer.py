"""The write path of one backup job: blobs -> packs -> index object.

In: chunk payloads (already compressed by the agent) and tree chunks. Out: packs
stored by a background thread, and `index/<id>` objects naming them: one as soon
as INDEX_PACKS packs or INDEX_BLOBS blobs are stored (by the same thread, while
the job goes on), the last one on `commit`. Only after `commit` may a snapshot
refer to the blobs (docs/FORMAT.md); an index object never names a pack that is
not stored. A killed job leaves stored packs, and index objects naming only them,
as garbage for prune, never a snapshot.

Packs are kept apart by stream: each component's data goes to packs of its own, and trees to
packs of their own (TREE_STREAM), so a restore of one component reads only that component's packs:
from an offsite tier, where a pack is downloaded whole, each pack is fetched once instead of once
by every component whose blobs it interleaves (a scale-1 snapshot's 58 shared packs, 1.6 GB, took
178 fetches, 5.4 GB, with 512 MiB of packs held in memory; docs/DESIGN.md).

Memory stays flat as the job grows: a pack closes at PACK_BLOBS blobs as well as
at its size, and the ids of blobs named by an index object already written leave
the job's own dedup set; the repository's index cache (on disk) answers for them.
"""
from __future__ import annotations

import os
import queue
import struct
import threading
import uuid
from dataclasses import dataclass
from typing import Iterator, Sequence

from ragbackup import errors, faults
from ragbackup.repo import chunking, inflight
from ragbackup.repo.ids import chunk_id
from ragbackup.repo.index import encode_index
from ragbackup.repo.packs import BLOB_TREE, FLAG_ZSTD, BlobLocation, PackWriter, blob_aad, pack_key
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import id_blocks


@dataclass
class WriteStats:
    blobs_new: int = 0
    bytes_new_raw: int = 0  # plaintext bytes of new blobs
    bytes_stored: int = 0  # sealed bytes written to packs
    packs: int = 0


INDEX_PACKS = 16  # packs named by one index object (about 512 MiB of packs)
# Small blobs (files of a few kB) fill a size-bound pack with 100,000s of blobs, and
# every one stays in the job's memory until an index object names its pack: 102 ->
# 176 MB peak RSS of the controller from 25,000 to 100,000 files of 2 kB. With these
# bounds an index object is written at least every 20,000 blobs, and what the job holds
# per blob (its id in the dedup set, its packed location) is bounded by them.
PACK_BLOBS = 10_000  # blobs in one pack at most
DEFAULT_STREAM = ""  # the stream of blobs whose caller names none
TREE_STREAM = "\x00trees"  # the stream of tree blobs (no component name starts with NUL)
INDEX_BLOBS = 20_000  # stored blobs that make the upload thread write an index object


class BlobWriter:
    """Deduplicating blob sink for one job; thread-safe `add`, single `commit`."""

    def __init__(self, repo: Repository, staging_dir: str):
        self.repo = repo
        self.stats = WriteStats()
        self._staging = staging_dir
        with errors.locate_os_error(staging_dir, "create pack staging directory"):
            os.makedirs(staging_dir, mode=0o750, exist_ok=True)
        self._lock = threading.Lock()
        self._pending: set[bytes] = set()
        self._open: dict[str, PackWriter] = {}  # stream -> its open pack
        self._finished: dict[str, tuple[int, bytes]] = {}  # pack id -> (size, packed locations), not yet indexed
        # _finished is shared with the upload thread under its own lock: a job thread holds
        # _lock while it waits for room in the upload queue.
        self._finished_lock = threading.Lock()
        self._stored: list[str] = []  # packs stored and not yet named by an index object (upload thread)
        self._stored_blobs = 0  # blobs in those packs (upload thread)
        # Packed locations of packs an index object now names, their ids still in _pending:
        # the job thread drops them from _pending under _lock (the upload thread cannot take
        # _lock, which a job thread holds while it waits for room in the upload queue).
        self._indexed: list[bytes] = []
        self.index_names: list[str] = []  # index objects written so far
        self._uploads: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._uploader = threading.Thread(target=self._upload_loop, name="pack-upload", daemon=True)
        self._uploader.start()
        # What prune must not take from under this job (inflight.py): its packs, the blobs it deduplicated.
        self._inflight = inflight.for_repository(repo.id)
        self.refs = self._inflight.register(staging_dir)

    # --- dedup ----------------------------------------------------------------------

    def missing(self, ids: list[bytes]) -> list[int]:
        """Indexes of `ids` that are neither in the repository nor already added in this job."""
        with self._lock:
            unseen = [i for i in ids if i not in self._pending]
        if not unseen:
            return []
        with self._inflight.guard:  # the answer "stored" is recorded before prune can look
            absent = self.repo.index.missing(unseen)
            self.refs.seen.add_many(i for i in unseen if i not in absent)
        return [n for n, i in enumerate(ids) if i in absent]

    def stored_list(self, digest: bytes, ids: Sequence[bytes]) -> bool:
        """True, with every id of `ids` claimed for prune, when the chunk list whose digest is `digest`
        was found wholly stored before and nothing left the index since (IndexCache.is_verified);
        False: the caller checks the ids one by one (`missing`)."""
        with self._inflight.guard:  # a prune's removal either came first (not verified) or waits for the claim
            if not self.repo.index.is_verified(digest):
                return False
            for block in id_blocks(ids):
                self.refs.seen.add_joined(block)
        return True

    def has(self, blob_id: bytes) -> bool:
        with self._lock:
            if blob_id in self._pending:
                return True
        with self._inflight.guard:
            stored = not self.repo.index.missing([blob_id])  # header-only blobs count as missing (index.py)
            if stored:
                self.refs.seen.add(blob_id)
        return stored

    # --- writing --------------------------------------------------------------------

    def add(self, blob_id: bytes, blob_type: int, payload: bytes, compressed: bool, raw_size: int) -> bool:
        """Seal and append one blob unless already stored; returns True when written."""
        return self.add_many([(blob_id, blob_type, payload, compressed, raw_size)]) == 1

    def add_many(self, blobs: list[tuple[bytes, int, bytes | memoryview, bool, int]],
                 stream: str = DEFAULT_STREAM) -> int:
        """Seal and append each (id, type, payload, compressed, raw size) not already stored to the open
        pack of `stream` (a component's name: its own packs); returns how many were written.

        Sealing runs outside the lock (AES-GCM releases the GIL); the batch is appended
        under one hold of it.
        """
        self._raise_upload_error()
        seal = self.repo.cipher.seal
        sealed = [seal(payload, blob_aad(bid)) for bid, _, payload, _, _ in blobs]
        written = 0
        with self._lock, errors.locate_os_error(self._staging, "write a pack in"):
            self._forget_indexed_locked()
            for (bid, btype, _, compressed, raw_size), data in zip(blobs, sealed):
                if bid in self._pending:
                    continue
                self._pending.add(bid)
                pack = self._open.get(stream)
                if pack is None:
                    pack = self._open[stream] = PackWriter(self._staging, self.repo.cipher)
                pack.add(bid, btype, FLAG_ZSTD if compressed else 0, raw_size, data)
                written += 1
                self.stats.bytes_new_raw += raw_size
                self.stats.bytes_stored += len(data)
                if pack.size >= self.repo.params.pack_size or pack.count >= PACK_BLOBS:
                    self._finish_pack_locked(stream)
            self.stats.blobs_new += written
        return written

    def add_plain(self, data: bytes | memoryview, blob_type: int, compressor: chunking.Compressor,
                  stream: str = DEFAULT_STREAM) -> bytes:
        """Hash a plaintext blob (trees), then compress and add it to `stream` unless stored; returns its id.

        A no-change backup's trees are the parent's: hashed, found stored, never compressed."""
        bid = chunk_id(self.repo.id_key, data)
        if not self.has(bid):
            payload, compressed = compressor.compress(data)
            self.add_many([(bid, blob_type, payload, compressed, len(data))], stream)
        return bid

    def add_tree(self, lines_path: str) -> list[bytes]:
        """Chunk a JSON-lines tree file into tree blobs; returns their ids in order."""
        compressor = chunking.Compressor(self.repo.params.compression_level)
        with open(lines_path, "rb") as f:
            return [self.add_plain(bytes(view), BLOB_TREE, compressor, TREE_STREAM)
                    for view in chunking.cut_stream(self.repo.tree_chunker, f)]

    def _forget_indexed_locked(self) -> None:
        """Drop from _pending the ids an index object already names (the index cache holds them now)."""
        with self._finished_lock:
            done, self._indexed = self._indexed, []
        for packed in done:
            self._pending.difference_update(f[0] for f in _LOCATION.iter_unpack(packed))

    def _packs(self, pack_ids: list[str]) -> Iterator[tuple[str, int, list[BlobLocation]]]:
        """These packs of this job with their locations, unpacked one pack at a time."""
        for pid in pack_ids:
            with self._finished_lock:
                size, packed = self._finished[pid]
            yield pid, size, unpack_locations(packed, pid)

    def _finish_pack_locked(self, stream: str) -> None:
        pack = self._open.pop(stream, None)
        if pack is None or pack.count == 0:
            return
        pack_id, locs = pack.finish()
        self.refs.packs.add(pack_id)  # before it is stored: prune never takes a pack of a running job
        with self._finished_lock:
            self._finished[pack_id] = (pack.size, pack_locations(locs))
        self.stats.packs += 1
        self._uploads.put((pack_id, pack.path))

    def _upload_loop(self) -> None:
        """Store finished packs in order; name every INDEX_PACKS stored packs in an index object at once."""
        while True:
            item = self._uploads.get()
            if item is None:
                return
            pack_id, path = item
            try:
                if self._error is None:
                    self._store_pack(pack_id, path)
                    self._stored.append(pack_id)
                    self._stored_blobs += self._blob_count(pack_id)
                    if len(self._stored) >= INDEX_PACKS or self._stored_blobs >= INDEX_BLOBS:
                        self._write_index()
            except BaseException as exc:  # noqa: BLE001 - surfaced by the job thread in _raise_upload_error
                self._error = exc
            finally:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def _blob_count(self, pack_id: str) -> int:
        with self._finished_lock:
            return len(self._finished[pack_id][1]) // _LOCATION.size

    def _write_index(self) -> None:
        """Write one index object naming the stored, not yet indexed packs; forget their locations.

        Called by the upload thread during the job, then by `commit` once that thread has ended.
        The object is stored, then recorded in the index cache, and only then may its ids leave
        _pending: at every moment `missing` finds a blob of this job in one or the other.
        """
        part, self._stored, self._stored_blobs = self._stored, [], 0
        if not part:
            return
        name = uuid.uuid4().hex
        self.repo.storage.put(f"index/{name}", encode_index(self.repo.cipher, self._packs(part)))
        self.repo.index.add_index_file(name, self._packs(part))
        self.index_names.append(name)
        with self._finished_lock:
            for pid in part:
                self._indexed.append(self._finished.pop(pid)[1])

    def _store_pack(self, pack_id: str, path: str) -> None:
        adopt = getattr(self.repo.storage, "adopt_file", None)
        if adopt is not None:
            adopt(pack_key(pack_id), path)
        else:
            self.repo.storage.put_file(pack_key(pack_id), path)

    def _raise_upload_error(self) -> None:
        if self._error is not None:
            raise self._error

    # --- completion -----------------------------------------------------------------

    def flush(self) -> None:
        """Finish the open packs and wait until every pack is stored."""
        with self._lock, errors.locate_os_error(self._staging, "write a pack in"):
            for stream in list(self._open):
                self._finish_pack_locked(stream)
        self._uploads.put(None)
        self._uploader.join()
        self._raise_upload_error()

    def commit(self) -> list[str]:
        """Flush, then name the packs not yet indexed; returns every index object of the job (none if no pack).

        One index object per INDEX_PACKS packs (the sealed object is built in memory, so
        this bounds what it holds); all but the last were written while the job ran.
        """
        self.flush()
        faults.point("backup.after_packs")
        self._write_index()
        return list(self.index_names)

    def abort(self) -> None:
        """Drop the open packs; packs already stored (and index objects naming them) stay as garbage for prune."""
        with self._lock:
            for pack in self._open.values():
                pack.abort()
            self._open.clear()
        self._uploads.put(None)
        self._uploader.join(timeout=60)
        self.close()

    def close(self) -> None:
        """End this job's claims (call after its snapshot is saved, or after abort)."""
        self._inflight.finish(self.refs)


# A finished pack's locations, kept until commit as fixed-size records (58 bytes a
# blob instead of a Python object each): id, type, flags, offset, length, raw_length.
_LOCATION = struct.Struct("<32sBBQQQ")


def pack_locations(locs: list[BlobLocation]) -> bytes:
    return b"".join(_LOCATION.pack(b.id, b.type, b.flags, b.offset, b.length, b.raw_length) for b in locs)


def unpack_locations(packed: bytes, pack: str) -> list[BlobLocation]:
    return [BlobLocation(*fields, pack) for fields in _LOCATION.iter_unpack(packed)]

