"""A read-only Storage that shows a versioned bucket as it was at a given time.

In: a VersionedS3Storage and a time. Out: the Storage contract where each key reads the newest
version written at or before that time; a key whose newest such version is a delete marker
(or that did not exist yet) is absent, and later overwrites and delete markers are ignored.
Writes raise RepositoryError. Next: Repository.open on it restores snapshots after an attack.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from ragbackup import errors
from ragbackup.storage.base import ObjectInfo
from ragbackup.storage.local import validate_key, validate_prefix
from ragbackup.storage.versions import ObjectVersion, VersionedS3Storage


def versions_as_of(versions: Iterable[ObjectVersion], when: dt.datetime) -> dict[str, ObjectVersion]:
    """Per key, the newest version (or delete marker) written at or before `when`; markers dropped.

    Times compare at S3's resolution (whole seconds). Two versions of a key with the same
    second: the one S3 lists as latest wins, else the later in the listing.
    """
    cutoff = when.replace(microsecond=0)
    best: dict[str, ObjectVersion] = {}
    for v in versions:
        if v.last_modified.replace(microsecond=0) > cutoff:
            continue
        old = best.get(v.key)
        if old is None or v.last_modified > old.last_modified or (
                v.last_modified == old.last_modified and v.is_latest):
            best[v.key] = v
    return {k: v for k, v in best.items() if not v.delete_marker}


class AsOfStorage:
    """The bucket's keys as of `when`; the listing is taken once, when it is built."""

    def __init__(self, inner: VersionedS3Storage, when: dt.datetime, prefix: str = ""):
        if when.tzinfo is None:
            raise errors.UsageError(f"--as-of {when.isoformat()}: give a time zone (e.g. Z or +00:00)")
        self.inner = inner
        self.when = when
        self._at = versions_as_of(inner.list_versions(prefix), when)

    def __repr__(self) -> str:
        return f"AsOfStorage({self.inner!r}, {self.when.isoformat()})"

    def describe(self) -> str:
        return f"{self.inner.describe()} as of {self.when.isoformat()}"

    def versions(self) -> dict[str, ObjectVersion]:
        """The chosen version of every key (for reports: which objects were read from older versions)."""
        return dict(self._at)

    def _version(self, key: str) -> str:
        validate_key(key)
        v = self._at.get(key)
        if v is None:
            raise errors.NotFound(f"object {key!r} did not exist in {self.describe()}")
        return v.version_id

    def get(self, key: str) -> bytes:
        return self.inner.get_version(key, self._version(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.get_version_range(key, self._version(key), offset, length)

    def get_to_file(self, key: str, path: str) -> None:
        self.inner.get_version_to_file(key, self._version(key), path)

    def size(self, key: str) -> int:
        self._version(key)
        return self._at[key].size

    def exists(self, key: str) -> bool:
        validate_key(key)
        return key in self._at

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        return iter([ObjectInfo(k, v.size) for k, v in self._at.items() if k.startswith(prefix)])

    def _read_only(self, what: str) -> errors.RepositoryError:
        return errors.RepositoryError(f"{self.describe()} is read-only: cannot {what}")

    def put(self, key: str, data: bytes) -> None:
        raise self._read_only(f"write {key!r}")

    def put_file(self, key: str, path: str) -> None:
        raise self._read_only(f"write {key!r}")

    def delete(self, key: str) -> None:
        raise self._read_only(f"delete {key!r}")

    def delete_many(self, keys: list[str]) -> None:
        raise self._read_only(f"delete {len(keys)} object(s)")
