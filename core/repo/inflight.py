"""What running jobs rely on that no snapshot names yet: their packs and the blobs they were told exist.

In: BlobWriters registering as they start, the packs they finish and the blob ids the
index answered "stored" for. Out: the protection prune checks, under one guard lock,
before it takes blobs out of the index (docs/FORMAT.md "Prune and concurrent backups").
"""
from __future__ import annotations

import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

BLOOM_BYTES = 8 * 1024 * 1024  # per running job: 1 bit in 5 set at 13 million ids (false keeps <1%)
_HASHES = 4  # bit positions per id, taken from the id's own bytes (ids are keyed BLAKE3: uniform)
_WORDS = struct.Struct("<%dI" % _HASHES)  # the positions: the id's first _HASHES little-endian 32-bit words


class Bloom:
    """A fixed bloom filter of 32-byte blob ids; a false positive only makes prune keep a blob."""

    def __init__(self, nbytes: int = BLOOM_BYTES):
        self._bits = bytearray(nbytes)
        self._mask = nbytes * 8 - 1  # nbytes is a power of two

    def _positions(self, blob_id: bytes) -> list[int]:
        return [w & self._mask for w in _WORDS.unpack_from(blob_id)]

    def add(self, blob_id: bytes) -> None:
        self.add_many((blob_id,))

    def add_many(self, blob_ids: Iterable[bytes]) -> None:
        bits, mask, unpack = self._bits, self._mask, _WORDS.unpack_from
        for blob_id in blob_ids:
            for w in unpack(blob_id):
                p = w & mask
                bits[p >> 3] |= 1 << (p & 7)

    def __contains__(self, blob_id: bytes) -> bool:
        return all(self._bits[p >> 3] & (1 << (p & 7)) for p in self._positions(blob_id))


@dataclass(eq=False)
class JobRefs:
    """One running job's claims: packs it wrote and blobs it deduplicated against."""

    name: str
    packs: set[str] = field(default_factory=set)
    seen: Bloom = field(default_factory=Bloom)


class InFlight:
    """Registry of one repository's running jobs, and the guard that orders them against prune.

    `guard` is held by a job while it asks the index which blobs exist and records the
    answer, and by prune while it checks those records and removes blobs from the index:
    so a blob is either recorded before prune looks, or already gone when the job asks.
    A job that ends while a prune runs stays listed until every prune that saw it ends
    (its snapshot may be newer than the prune's list of snapshots).
    """

    def __init__(self) -> None:
        self.guard = threading.RLock()
        self._jobs: list[JobRefs] = []
        self._retired: list[JobRefs] = []
        self._prunes = 0

    def register(self, name: str) -> JobRefs:
        refs = JobRefs(name)
        with self.guard:
            self._jobs.append(refs)
        return refs

    def finish(self, refs: JobRefs) -> None:
        with self.guard:
            if refs in self._jobs:
                self._jobs.remove(refs)
                if self._prunes:
                    self._retired.append(refs)

    def prune_started(self) -> None:
        with self.guard:
            self._prunes += 1

    def prune_ended(self) -> None:
        with self.guard:
            self._prunes -= 1
            if not self._prunes:
                self._retired.clear()

    def claims(self) -> list[JobRefs]:
        """Running jobs and those ended since a running prune began (call with `guard` held)."""
        return self._jobs + self._retired

    def protected_packs(self) -> set[str]:
        with self.guard:
            return {p for j in self.claims() for p in j.packs}

    def seen(self, blob_id: bytes) -> bool:
        """True when some job may rely on `blob_id` being stored (call with `guard` held)."""
        return any(blob_id in j.seen for j in self.claims())


_registries: dict[str, InFlight] = {}
_registries_lock = threading.Lock()


def for_repository(repo_id: str) -> InFlight:
    """The registry of repository `repo_id` in this process (the controller is its only writer)."""
    with _registries_lock:
        return _registries.setdefault(repo_id, InFlight())
