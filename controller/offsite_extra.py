"""Tier chores beside replication: create a tier's bucket (object lock enabled when configured),
and import an old runbook tarball straight from an S3 bucket.

In: the Controller and the request. Out: InitTierReply (bucket created or found; a locked tier on
a bucket without object lock is a StateError); for `ragctl import s3://BUCKET/KEY`, the object
downloaded with the tier's endpoint and credentials into the staging directory (space checked
first, size checked after), then the tarball import (runbook_import.import_file) unchanged.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile

from ragbackup import errors
from ragbackup.config import TierConfig
from ragbackup.repo.manifest import Manifest
from ragbackup.storage import retrying
from ragbackup.storage.s3 import S3Storage
from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.backup import record_snapshot
from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.lockkeep import tier_s3_settings, versioned
from ragbackup.controller.runbook_import import HEADROOM, ImportRequest, import_file, parse_mapping
from ragbackup.controller.state import Controller

log = logging.getLogger("ragbackup.controller")


def tier_named(ctl: Controller, name: str) -> TierConfig:
    if name not in ctl.cfg.tiers:
        raise errors.UsageError(f"no tier named {name!r} (configured: {', '.join(ctl.cfg.tiers) or 'none'})")
    return ctl.cfg.tiers[name]


def init_tier(ctl: Controller, req: controller_pb2.InitTierRequest, who, audit) -> controller_pb2.InitTierReply:
    """Create the tier's bucket: versioned, and with object lock enabled when the tier is locked."""
    tier = tier_named(ctl, req.tier)
    storage = versioned(tier)
    created = storage.create_bucket_if_missing()
    storage.check_lock()  # an existing bucket without object lock cannot get it afterwards
    versioning = storage.versioning_enabled()
    audit.record("init-tier", who, "ok", tier=tier.name, bucket=tier.bucket, created=created,
                 object_lock=tier.object_lock is not None)
    log.info("tier %s: bucket %s %s (object lock %s, versioning %s)", tier.name, tier.bucket,
             "created" if created else "exists", "on" if tier.object_lock else "off", "on" if versioning else "off")
    return controller_pb2.InitTierReply(created=created, location=storage.describe(),
                                        object_lock=tier.object_lock is not None, versioning=versioning)


# --------------------------------------------------------------------------- import from S3

def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/key/of/object.tar.gz` -> (bucket, key); UsageError otherwise."""
    rest = url[len("s3://"):] if url.startswith("s3://") else ""
    bucket, _, key = rest.partition("/")
    if not bucket or not key or key.endswith("/"):
        raise errors.UsageError(f"{url!r} is not s3://BUCKET/KEY of one object")
    return bucket, key


def tier_for(ctl: Controller, bucket: str, name: str) -> TierConfig:
    """The tier whose endpoint and credentials reach `bucket`: the one named, else the one with that bucket."""
    if name:
        return tier_named(ctl, name)
    matches = [t for t in ctl.cfg.tiers.values() if t.bucket == bucket]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise errors.UsageError(f"no tier uses bucket {bucket!r}: name the tier whose endpoint and credentials "
                                f"reach it with --tier (configured: {', '.join(ctl.cfg.tiers) or 'none'})")
    raise errors.UsageError(f"tiers {', '.join(t.name for t in matches)} all use bucket {bucket!r}: choose with --tier")


def import_request(ctl: Controller, req: controller_pb2.ImportS3Request, user) -> ImportRequest:
    _, key = parse_s3_url(req.url)
    return ImportRequest(filename=os.path.basename(key), reason=req.reason or f"import {req.url}", user=str(user),
                         mapping=parse_mapping(req.map_json or "{}"), outside_symlinks=req.outside_symlinks)


def _check_space(staging: str, need: int, url: str) -> None:
    free = shutil.disk_usage(staging).free
    if need + HEADROOM > free:
        raise errors.NoSpace(f"import {url}: the controller's staging directory {staging} has {free >> 20} MiB free, "
                             f"the object needs {need >> 20} MiB plus {HEADROOM >> 20} MiB headroom; free space there "
                             "or point [controller] state_dir at a larger volume")


def download(storage: S3Storage, key: str, dest: str, staging: str) -> int:
    """Fetch `key` into `dest` after checking the staging volume can hold it; IntegrityError on a short file."""
    size = storage.size(key)
    _check_space(staging, size, f"{storage.describe()}{key}")
    storage.get_to_file(key, dest)
    got = os.path.getsize(dest)
    if got != size:
        raise errors.IntegrityError(f"{storage.describe()}{key}: downloaded {got} bytes, the object has {size}")
    return size


def import_s3(ctx: JobContext, req: controller_pb2.ImportS3Request, imp: ImportRequest) -> Manifest:
    """Download the tarball into the staging directory, import it as `ragctl import FILE` does, remove it."""
    ctl = ctx.controller
    bucket, key = parse_s3_url(req.url)
    tier = tier_for(ctl, bucket, req.tier)
    storage = retrying(S3Storage(dataclasses.replace(tier_s3_settings(tier), bucket=bucket, prefix="")))
    ctl.repo()  # RepositoryNotFound before the download
    os.makedirs(ctl.staging_dir, mode=0o750, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".import-s3-", dir=ctl.staging_dir)
    try:
        path = os.path.join(work, "upload")
        size = download(storage, key, path, ctl.staging_dir)
        ctx.count(bytes_read=size)
        msg = f"downloaded {req.url} ({size} B) through tier {tier.name}"
        log.info("%s", msg)
        manifest = import_file(ctl, path, dataclasses.replace(imp, size_hint=size), ctx.cancel, ctx.clock)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record_snapshot(ctx, manifest)
    return manifest
