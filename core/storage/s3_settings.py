"""Where and how to reach one S3 bucket, validated; no S3 client library is imported here.

In: values from the configuration. Out: a frozen S3Settings for ragbackup.storage.s3.S3Storage;
ConfigError naming the first setting out of range.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ragbackup import errors
from ragbackup.secret import Secret

MiB = 1024 * 1024
_ADDRESSING_STYLES = ("auto", "path", "virtual")
_MIN_PART = 5 * MiB  # S3's smallest allowed multipart part


@dataclass(frozen=True)
class S3Settings:
    """Where and how to reach one S3 bucket. Keys None means the standard AWS credential chain."""

    endpoint_url: str | None
    bucket: str
    prefix: str = ""
    region: str = "us-east-1"
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    addressing_style: str = "path"
    connect_timeout: float = 5
    read_timeout: float = 60
    max_attempts: int = 5  # requests per call (botocore's standard retry mode)
    deadline: float = 60  # open_storage's Retrying: no retry of an operation starts later than this (seconds)
    multipart_threshold: int = 64 * MiB
    storage_class_for: Mapping[str, str] | None = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("access_key_id", "secret_access_key"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Secret(value))
        if self.storage_class_for is None:
            object.__setattr__(self, "storage_class_for", {})
        _validate_settings(self)


def _validate_settings(s: S3Settings) -> None:
    """ConfigError naming the first setting that is out of range."""
    problems = [
        (not s.bucket, "bucket", "a bucket name"),
        (s.addressing_style not in _ADDRESSING_STYLES, "addressing_style", " or ".join(_ADDRESSING_STYLES)),
        ((s.access_key_id is None) != (s.secret_access_key is None), "access_key_id/secret_access_key",
         "both set, or neither (standard AWS credential chain)"),
        (not _finite_positive(s.connect_timeout), "connect_timeout", "a finite positive number of seconds"),
        (not _finite_positive(s.read_timeout), "read_timeout", "a finite positive number of seconds"),
        (not _finite_positive(s.deadline), "deadline", "a finite positive number of seconds"),
        (s.max_attempts < 1, "max_attempts", "at least 1"),
        (s.multipart_threshold < _MIN_PART, "multipart_threshold", f"at least {_MIN_PART} bytes"),
    ]
    for bad, name, expected in problems:
        if bad:
            raise errors.ConfigError(f"S3 setting `{name}` for bucket {s.bucket!r}: expected {expected}")


def _finite_positive(value: float) -> bool:
    return value > 0 and math.isfinite(value)  # nan fails both
