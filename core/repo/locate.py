"""Blob locations for a reader that goes through packs in the order backups wrote them.

In: the index cache and a reader of a pack's header. Out: BlobLocations, in the order asked.

A restore reads a file's chunks in the order its backup wrote them, so thousands of small
chunks in a row (an RDB stored by record: 272,000 of about 1 KiB at 1,000,000 keys) lie in
one pack. Looking each up in the index costs 4-7 us of SQLite. Once one lookup has placed
HEADER_MIN ids in a pack, that pack's own authenticated header (one range read) places its
other blobs for the lookups that follow, at well under a microsecond each. A location is only
where a reader looks: a blob that fails to open where a header put it is looked up in the
index again (Repository._read_located), so a blob repaired into another pack is still found.
"""
from __future__ import annotations

import collections
import logging
from typing import Callable, Collection, Iterable, NamedTuple

from ragbackup import errors
from ragbackup.repo.index import IndexCache
from ragbackup.repo.packs import RECORD_SIZE, BlobLocation, PackHeader, header_record
from ragbackup.repo.tree import ID_SIZE

HEADER_MIN = 256  # ids of one lookup a pack must hold before its header is read
HEADERS_KEPT = 2  # headers held at once (a pack holds at most 10,000 blobs: about 1.5 MB each)

log = logging.getLogger("ragbackup.repo")


def headers_worth_reading(packs: Iterable[str], held: Collection[str], min_ids: int) -> list[str]:
    """Pure: the packs named at least `min_ids` times in `packs` (one name per located id) that
    are not in `held`, the most named first."""
    counts = collections.Counter(packs)
    return [p for p, n in counts.most_common() if n >= min_ids and p not in held]


class _Held(NamedTuple):
    """A pack header kept for lookups: the header and each blob id's record number in it."""

    header: PackHeader
    slots: dict[bytes, int]


class Locator:
    """Places blob ids for one reader (not shared between threads).

    In: the index cache; `read_header(pack_id, size)`, the pack's opened header (an
    IntegrityError from it is logged and the pack left to the index). Out: `locate`.
    `from_headers` counts the ids a header placed.
    """

    def __init__(self, index: IndexCache, read_header: Callable[[str, int], PackHeader],
                 min_ids: int = HEADER_MIN, kept: int = HEADERS_KEPT):
        self._index, self._read_header = index, read_header
        self._min_ids, self._kept = min_ids, kept
        self._held: collections.OrderedDict[str, _Held] = collections.OrderedDict()
        self._unreadable: set[str] = set()
        self.from_headers = 0

    def locate(self, ids: list[bytes]) -> list[BlobLocation]:
        """The location of each of `ids`, in order. IntegrityError names an id neither a held
        header nor the index places. Packs this lookup found many ids in are held for the next."""
        out = [self._held_location(blob_id) for blob_id in ids]
        missing = list(dict.fromkeys(blob_id for blob_id, loc in zip(ids, out) if loc is None))
        self.from_headers += len(ids) - len(missing)
        if not missing:
            return out  # type: ignore[return-value]
        found = self._index.lookup_many(missing)
        for k, blob_id in enumerate(ids):
            if out[k] is None:
                loc = found.get(blob_id)
                if loc is None:
                    raise errors.IntegrityError(f"blob {blob_id.hex()} is referenced but not in the index")
                out[k] = loc
        for pack in headers_worth_reading((loc.pack for loc in found.values()), self._held, self._min_ids):
            self._hold(pack)
        return out  # type: ignore[return-value]

    def _held_location(self, blob_id: bytes) -> BlobLocation | None:
        for pack, held in self._held.items():
            i = held.slots.get(blob_id)
            if i is not None:
                try:
                    return header_record(held.header, pack, i)
                except errors.IntegrityError as exc:  # authenticated, yet a blob outside the pack
                    self._let_go(pack, exc)
                    return None
        return None

    def _let_go(self, pack: str, exc: errors.IntegrityError) -> None:
        log.warning("%s: its blobs are located through the index", exc.message)
        self._unreadable.add(pack)
        self._held.pop(pack, None)

    def _hold(self, pack: str) -> None:
        size = self._index.pack_size(pack)
        if size is None or pack in self._unreadable:
            return
        try:
            header = self._read_header(pack, size)
        except errors.IntegrityError as exc:
            self._let_go(pack, exc)
            return
        recs = header.records
        slots = {recs[i:i + ID_SIZE]: n for n, i in enumerate(range(0, len(recs), RECORD_SIZE))}
        self._held[pack] = _Held(header, slots)
        while len(self._held) > self._kept:
            self._held.popitem(last=False)
