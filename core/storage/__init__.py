"""Storage backends for the repository: local filesystem and S3, plus wrappers.

In: a LocalSettings or S3Settings from the configuration. Out: `open_storage` gives
a Storage (base.py) that the repository layer (ragbackup.repo) reads and writes.
"""
from __future__ import annotations

from ragbackup.storage.base import BucketCreator, ObjectInfo, Storage
from ragbackup.storage.faults import wrap_from_env
from ragbackup.storage.local import LocalSettings, LocalStorage
from ragbackup.storage.retrying import Retrying, retrying
from ragbackup.storage.s3_settings import S3Settings

__all__ = [
    "BucketCreator",
    "LocalSettings",
    "LocalStorage",
    "ObjectInfo",
    "Retrying",
    "S3Settings",
    "S3Storage",
    "Storage",
    "open_storage",
]


def __getattr__(name: str):
    """S3Storage on first use: boto3 is imported only where an S3 repository is configured."""
    if name == "S3Storage":
        from ragbackup.storage.s3 import S3Storage
        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_storage(spec: LocalSettings | S3Settings) -> Storage:
    """The Storage for `spec`: S3 wrapped in Retrying, a bare LocalStorage for local paths.

    With RAG_BACKUP_STORAGE_FAULTS set (the reliability tests), the backend is wrapped in
    FaultyStorage (faults.py) below Retrying, so injected transient faults are retried.
    An S3 call fails within `deadline + max_attempts * (connect_timeout + read_timeout + 1)` (the
    second: botocore's wait for "100 Continue" before an upload's body) and botocore's backoff
    between its requests (under 3 s for 2 attempts).

    Optional capabilities stay visible through the wrappers: the S3 stack is a
    BucketCreator (`isinstance(storage, BucketCreator)`), the local one is not.
    """
    if isinstance(spec, LocalSettings):
        return wrap_from_env(LocalStorage(spec.path))
    if isinstance(spec, S3Settings):
        from ragbackup.storage.s3 import S3Storage
        return retrying(wrap_from_env(S3Storage(spec)), deadline=spec.deadline)
    raise TypeError(f"unsupported storage settings: {type(spec).__name__}")
