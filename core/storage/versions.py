"""S3 object versions and object lock: retention on every write, its extension, reads by version.

In: S3Settings, an optional ObjectLock (days, mode) and a clock. Out: VersionedS3Storage, the
Storage contract over a versioned bucket where every PUT carries its own retain-until date
(now + days; never a bucket default, which would block the tool's own deletes), plus version
listing, reads of one version, retention reads and extensions; `deletes` without a version id
only add delete markers, so prune on a locked bucket never fails because of a lock.
Next: asof.AsOfStorage reads a repository as it was at a time; lockkeep extends live objects.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ragbackup import clock as clocks
from ragbackup import errors
from ragbackup.storage.local import check_range, short_read, validate_prefix
from ragbackup.storage.s3 import S3Storage, _code
from ragbackup.storage.s3_settings import S3Settings

LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")  # GET answers InvalidObjectState until RestoreObject


@dataclass(frozen=True)
class ObjectLock:
    """Per-object retention: every version is kept `days` after its write (or its last extension)."""

    days: int
    mode: str = "COMPLIANCE"

    def __post_init__(self) -> None:
        if self.days < 1:
            raise errors.ConfigError(f"object lock days: expected at least 1, got {self.days}")
        if self.mode not in LOCK_MODES:
            raise errors.ConfigError(f"object lock mode: expected {' or '.join(LOCK_MODES)}, got {self.mode!r}")

    def until(self, now: dt.datetime) -> dt.datetime:
        """The retain-until date of a version written (or extended) at `now`, whole seconds."""
        return (now + dt.timedelta(days=self.days)).replace(microsecond=0)


@dataclass(frozen=True)
class ObjectVersion:
    """One version of a key (or a delete marker), as ListObjectVersions reports it."""

    key: str
    version_id: str
    last_modified: dt.datetime
    is_latest: bool
    delete_marker: bool
    size: int = 0
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class RestoreState:
    """What HeadObject says about one object's archive class and RestoreObject progress."""

    storage_class: str
    ongoing: bool  # a RestoreObject request is being served
    readable: bool  # a GET would succeed now (not in an archive class, or a restored copy exists)


class VersionedS3Storage(S3Storage):
    """S3Storage on a versioned bucket, with object lock on every write when `lock` is given."""

    def __init__(self, settings: S3Settings, lock: ObjectLock | None = None,
                 clock: clocks.Clock = clocks.SYSTEM, tags_for: dict[str, str] | None = None):
        super().__init__(settings)
        self.lock = lock
        self._clock = clock
        self._tags_for = dict(tags_for or {})  # key prefix -> URL-encoded tag set (lifecycle filters on it)

    def __repr__(self) -> str:
        return f"VersionedS3Storage({self.describe()!r}, lock={self.lock!r})"

    # -- writes -------------------------------------------------------------

    def _extra_args(self, key: str) -> dict[str, Any]:
        """The storage class, plus this write's own retention when the bucket is locked."""
        extra: dict[str, Any] = dict(super()._extra_args(key))
        tags = [t for p, t in self._tags_for.items() if key.startswith(p)]
        if tags:
            extra["Tagging"] = tags[0]
        if self.lock is not None:
            extra["ObjectLockMode"] = self.lock.mode
            extra["ObjectLockRetainUntilDate"] = self.lock.until(self._clock.now())
        return extra

    def create_bucket_if_missing(self) -> bool:
        """Create the bucket (with object lock enabled when configured) unless it exists."""
        with self._boundary("create_bucket"):
            if self._bucket_exists():
                return False
            kwargs: dict[str, Any] = {}
            if self._s.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self._s.region}
            if self.lock is not None:
                kwargs["ObjectLockEnabledForBucket"] = True
            try:
                self._client.create_bucket(Bucket=self._s.bucket, **kwargs)
            except ClientError as err:
                if _code(err) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return False
                raise
            if self.lock is None:
                self._client.put_bucket_versioning(
                    Bucket=self._s.bucket, VersioningConfiguration={"Status": "Enabled"})
            return True

    def lock_enabled(self) -> bool:
        """True when the bucket has object lock enabled (GetObjectLockConfiguration)."""
        with self._boundary("get_object_lock_configuration"):
            try:
                reply = self._client.get_object_lock_configuration(Bucket=self._s.bucket)
            except ClientError as err:
                if _code(err) in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound",
                                  "NoSuchObjectLockConfiguration", "InvalidRequest"):
                    return False
                raise
        return reply.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def bucket_exists(self) -> bool:
        with self._boundary("head_bucket"):
            return self._bucket_exists()

    def versioning_enabled(self) -> bool:
        """True when the bucket keeps object versions (GetBucketVersioning: Enabled)."""
        with self._boundary("get_bucket_versioning"):
            return self._client.get_bucket_versioning(Bucket=self._s.bucket).get("Status") == "Enabled"

    def check_lock(self) -> None:
        """StateError unless the bucket can lock what this storage writes (when a lock is configured)."""
        if self.lock is not None and not self.lock_enabled():
            raise errors.StateError(
                f"{self.describe()}: object lock is configured ({self.lock.mode}, {self.lock.days} days) but the "
                "bucket was created without object lock; S3 cannot enable it on an existing bucket: create a new "
                "bucket with `ragctl init --tier` (which enables it) and point the tier at it")

    def extend_retention(self, key: str, version_id: str, until: dt.datetime) -> None:
        """PutObjectRetention on one version: keep it at least until `until`."""
        assert self.lock is not None, "extend_retention needs an object lock"
        full = self._full(key)
        with self._boundary("put_object_retention", key):
            self._client.put_object_retention(
                Bucket=self._s.bucket, Key=full, VersionId=version_id,
                Retention={"Mode": self.lock.mode, "RetainUntilDate": until})

    # -- lifecycle ----------------------------------------------------------

    def lifecycle_rules(self) -> list[dict]:
        """The bucket's lifecycle rules (none: an empty list)."""
        with self._boundary("get_bucket_lifecycle_configuration"):
            try:
                return list(self._client.get_bucket_lifecycle_configuration(Bucket=self._s.bucket).get("Rules", []))
            except ClientError as err:
                if _code(err) in ("NoSuchLifecycleConfiguration", "NotImplemented"):
                    return []
                raise

    def put_lifecycle_rules(self, rules: list[dict]) -> None:
        """Replace the bucket's lifecycle rules (all of them: S3 keeps one configuration per bucket)."""
        with self._boundary("put_bucket_lifecycle_configuration"):
            if rules:
                self._client.put_bucket_lifecycle_configuration(
                    Bucket=self._s.bucket, LifecycleConfiguration={"Rules": rules})
            else:
                self._client.delete_bucket_lifecycle(Bucket=self._s.bucket)

    # -- versions -----------------------------------------------------------

    def list_versions(self, prefix: str) -> Iterator[ObjectVersion]:
        """Every version and delete marker under `prefix`, page by page."""
        validate_prefix(prefix)
        paginator = self._client.get_paginator("list_object_versions")
        pages = paginator.paginate(Bucket=self._s.bucket, Prefix=self._prefix + prefix)
        with self._boundary("list_versions", prefix):
            for page in pages:
                for v in page.get("Versions", ()):
                    yield self._version(v, marker=False)
                for v in page.get("DeleteMarkers", ()):
                    yield self._version(v, marker=True)

    def _version(self, v: dict, marker: bool) -> ObjectVersion:
        return ObjectVersion(
            key=v["Key"][len(self._prefix):], version_id=str(v.get("VersionId") or "null"),
            last_modified=v["LastModified"], is_latest=bool(v.get("IsLatest")), delete_marker=marker,
            size=int(v.get("Size", 0)), storage_class=str(v.get("StorageClass") or "STANDARD"))

    def get_version(self, key: str, version_id: str) -> bytes:
        full = self._full(key)
        with self._boundary("get", key):
            resp = self._client.get_object(Bucket=self._s.bucket, Key=full, VersionId=version_id)
            with closing(resp["Body"]) as body:
                return body.read()

    def get_version_range(self, key: str, version_id: str, offset: int, length: int) -> bytes:
        """A ranged GET of one version; IntegrityError if it runs past the end."""
        check_range(offset, length)
        if length == 0:
            return b""
        full = self._full(key)
        with self._boundary("get_range", key):
            resp = self._client.get_object(Bucket=self._s.bucket, Key=full, VersionId=version_id,
                                           Range=f"bytes={offset}-{offset + length - 1}")
            with closing(resp["Body"]) as body:
                data = body.read()
        if len(data) != length:
            raise short_read(self.describe(), key, offset, length, len(data))
        return data

    def get_version_to_file(self, key: str, version_id: str, path: str) -> None:
        full = self._full(key)
        with self._boundary("get_to_file", key), errors.locate_os_error(path, "download to"):
            self._client.download_file(self._s.bucket, full, path, ExtraArgs={"VersionId": version_id},
                                       Config=self._transfer)

    def retention(self, key: str, version_id: str | None = None) -> dt.datetime | None:
        """The version's retain-until date (HeadObject; GetObjectRetention is broken on some servers)."""
        full = self._full(key)
        extra = {"VersionId": version_id} if version_id else {}
        with self._boundary("head", key):
            head = self._client.head_object(Bucket=self._s.bucket, Key=full, **extra)
        return head.get("ObjectLockRetainUntilDate")

    # -- archive classes ----------------------------------------------------

    def list_classes(self, prefix: str) -> Iterator[tuple[str, int, str]]:
        """(key, size, storage class) of every current object under `prefix` (ListObjectsV2)."""
        validate_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self._s.bucket, Prefix=self._prefix + prefix)
        with self._boundary("list", prefix):
            for page in pages:
                for obj in page.get("Contents", ()):
                    yield obj["Key"][len(self._prefix):], int(obj["Size"]), str(obj.get("StorageClass") or "STANDARD")

    def restore_state(self, key: str) -> RestoreState:
        """The object's class and whether a GET works now (HeadObject's StorageClass and Restore)."""
        full = self._full(key)
        with self._boundary("head", key):
            head = self._client.head_object(Bucket=self._s.bucket, Key=full)
        return restore_state(head)

    def request_restore(self, key: str, days: int, tier: str = "Standard") -> None:
        """RestoreObject: a temporary readable copy for `days`; one already under way is fine."""
        full = self._full(key)
        with self._boundary("restore_object", key):
            try:
                self._client.restore_object(Bucket=self._s.bucket, Key=full, RestoreRequest={
                    "Days": days, "GlacierJobParameters": {"Tier": tier}})
            except ClientError as err:
                if _code(err) != "RestoreAlreadyInProgress":
                    raise


def restore_state(head: dict) -> RestoreState:
    """Parse HeadObject's StorageClass and `Restore: ongoing-request="false", expiry-date=...`."""
    cls = str(head.get("StorageClass") or "STANDARD")
    restore = str(head.get("Restore") or "")
    ongoing = 'ongoing-request="true"' in restore
    done = 'ongoing-request="false"' in restore
    return RestoreState(storage_class=cls, ongoing=ongoing, readable=cls not in ARCHIVE_CLASSES or done)
