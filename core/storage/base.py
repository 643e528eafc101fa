"""The storage contract every repository backend implements.

In: object keys such as `data/ab/<pack id>`, `index/<id>`, `snapshots/<id>`,
`keys/<id>`, `config`. Out: bytes, sizes and listings. The repository layer
(ragbackup.repo) is the only caller; backends are local.py and s3.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key and size in bytes."""

    key: str
    size: int


@runtime_checkable
class Storage(Protocol):
    """A flat key -> bytes store with atomic whole-object writes.

    Contract (tests/unit/storage/test_contract.py runs it against every backend):
    - `put`/`put_file` are atomic: a reader sees the old object, nothing, or the
      whole new object; once they return, the object is durable.
    - `get` of a missing key raises ragbackup.errors.NotFound.
    - `list(prefix)` yields every object whose key starts with prefix, in no
      particular order, without loading the whole listing into memory.
    - Transient failures raise ragbackup.errors.StorageUnavailable; every
      network call has a timeout.
    """

    def describe(self) -> str:
        """A human-readable location, e.g. `/var/backups/repo` or `s3://bucket/prefix`."""

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any object there."""

    def put_file(self, key: str, path: str) -> None:
        """Store the content of the local file `path` under `key` (large objects)."""

    def get(self, key: str) -> bytes:
        """Return the whole object."""

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return `length` bytes starting at `offset`."""

    def get_to_file(self, key: str, path: str) -> None:
        """Download the whole object into the local file `path`."""

    def size(self, key: str) -> int:
        """Return the object's size; NotFound if missing."""

    def exists(self, key: str) -> bool:
        """True when an object is stored under `key`."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield the objects whose key starts with `prefix`."""

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""


@runtime_checkable
class BucketCreator(Protocol):
    """An optional capability: a backend whose container (an S3 bucket) can be created.

    `ragctl init` calls it when the stack `open_storage()` built has it; wrappers that
    forward it (Retrying) implement it only when what they wrap does.
    """

    def create_bucket_if_missing(self) -> bool:
        """Create the bucket unless it exists; True when this call created it."""
