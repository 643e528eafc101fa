"""Object lock and versions against a real SeaweedFS: retention on every write, attacks refused,
reads as of a time, deletes that only add markers, retention extended."""
from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from ragbackup import errors
from ragbackup.clock import FakeClock
from ragbackup.repo import chunking
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.repository import RepoParams, Repository
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import retrying
from ragbackup.storage.asof import AsOfStorage
from ragbackup.storage.versions import ObjectLock, VersionedS3Storage

PASS = Unlocker("passphrase", b"correct horse")
LOCK = ObjectLock(days=2, mode="COMPLIANCE")


def _locked(s3_server, **kw) -> VersionedS3Storage:
    storage = VersionedS3Storage(s3_server.settings(f"lock-{uuid.uuid4().hex[:12]}"), LOCK, **kw)
    assert storage.create_bucket_if_missing()
    return storage


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def _after_a_second() -> dt.datetime:
    """A time strictly between two writes at S3's one-second resolution."""
    time.sleep(1.1)
    when = dt.datetime.now(dt.timezone.utc)
    time.sleep(1.1)
    return when


def test_every_write_carries_its_own_retention_and_the_bucket_has_no_default(s3_server):
    storage = _locked(s3_server)
    storage.check_lock()
    storage.put("config", b"hello")
    until = storage.retention("config")
    expected = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=LOCK.days)
    assert until is not None and abs((until - expected).total_seconds()) < 120
    conf = s3_server.client().get_object_lock_configuration(Bucket=storage._s.bucket)["ObjectLockConfiguration"]
    assert conf["ObjectLockEnabled"] == "Enabled" and "Rule" not in conf


def test_a_bucket_without_object_lock_is_a_state_error(s3_server, s3_bucket):
    storage = VersionedS3Storage(s3_server.settings(s3_bucket), LOCK)
    with pytest.raises(errors.StateError, match="created without object lock"):
        storage.check_lock()


def test_attacks_with_the_same_credentials_fail_or_leave_the_old_version_readable(s3_server):
    storage = _locked(s3_server)
    storage.put("snapshots/a", b"genuine")
    client, bucket = s3_server.client(), storage._s.bucket
    version = client.head_object(Bucket=bucket, Key="snapshots/a")["VersionId"]
    with pytest.raises(ClientError) as exc:
        client.delete_object(Bucket=bucket, Key="snapshots/a", VersionId=version)
    assert _code(exc.value) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        client.delete_object(Bucket=bucket, Key="snapshots/a", VersionId=version, BypassGovernanceRetention=True)
    assert _code(exc.value) == "AccessDenied"
    with pytest.raises(ClientError) as exc:  # shortening a COMPLIANCE retention
        client.put_object_retention(Bucket=bucket, Key="snapshots/a", VersionId=version, Retention={
            "Mode": "COMPLIANCE", "RetainUntilDate": dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)})
    assert _code(exc.value) == "AccessDenied"
    before = _after_a_second()
    client.put_object(Bucket=bucket, Key="snapshots/a", Body=b"ransom")
    client.delete_object(Bucket=bucket, Key="snapshots/a")  # a delete marker on top
    assert not storage.exists("snapshots/a")
    assert AsOfStorage(storage, before).get("snapshots/a") == b"genuine"


def test_delete_on_a_locked_bucket_adds_a_marker_and_never_fails(s3_server):
    storage = _locked(s3_server)
    for name in ("data/00/a", "data/00/b", "data/00/c"):
        storage.put(name, name.encode())
    before = _after_a_second()
    storage.delete("data/00/a")
    storage.delete_many(["data/00/b", "data/00/c"])
    assert list(storage.list("data/")) == []
    markers = [v for v in storage.list_versions("data/") if v.delete_marker]
    assert sorted(v.key for v in markers) == ["data/00/a", "data/00/b", "data/00/c"]
    assert sorted(o.key for o in AsOfStorage(storage, before).list("data/")) == ["data/00/a", "data/00/b", "data/00/c"]


def test_as_of_ignores_keys_written_later_and_refuses_writes(s3_server):
    storage = _locked(s3_server)
    storage.put("keys/one", b"1")
    before = _after_a_second()
    storage.put("keys/two", b"2")
    past = AsOfStorage(storage, before)
    assert [o.key for o in past.list("keys/")] == ["keys/one"]
    assert past.exists("keys/one") and not past.exists("keys/two")
    with pytest.raises(errors.NotFound):
        past.get("keys/two")
    with pytest.raises(errors.RepositoryError, match="read-only"):
        past.put("keys/three", b"3")


def test_extend_retention_moves_retain_until_forward(s3_server):
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    storage = _locked(s3_server, clock=clock)
    storage.put("index/x", b"x")
    [v] = list(storage.list_versions("index/"))
    first = storage.retention("index/x", v.version_id)
    later = LOCK.until(clock.now() + dt.timedelta(days=1))
    storage.extend_retention("index/x", v.version_id, later)
    assert storage.retention("index/x", v.version_id) == later > first


def test_a_repository_on_a_locked_bucket_restores_as_of_before_an_attack(s3_server, tmp_path):
    storage = _locked(s3_server)
    repo = Repository.init(retrying(storage), PASS, str(tmp_path / "cache"), RepoParams(pack_size=4 * 1024 * 1024))
    w = BlobWriter(repo, str(tmp_path / "staging"))
    blob = w.add_plain(b"precious " * 1000, BLOB_DATA, chunking.Compressor())
    w.commit()
    repo.close()
    before = _after_a_second()
    client, bucket = s3_server.client(), storage._s.bucket
    for obj in client.list_objects_v2(Bucket=bucket)["Contents"]:
        client.put_object(Bucket=bucket, Key=obj["Key"], Body=b"encrypted by an attacker")
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    with pytest.raises(errors.RepositoryNotFound):
        Repository.open(retrying(storage), PASS, str(tmp_path / "cache2"))
    again = Repository.open(retrying(AsOfStorage(storage, before)), PASS, str(tmp_path / "cache3"))
    again.sync_index()
    assert again.read_blob(blob) == b"precious " * 1000


def test_maintenance_extends_only_live_objects_near_their_end(s3_server):
    from ragbackup.config import TierConfig
    from ragbackup.controller import lockkeep
    from ragbackup.tier_options import ObjectLockConfig

    s = s3_server.settings(f"keep-{uuid.uuid4().hex[:12]}")
    tier = TierConfig("s3", s.bucket, endpoint_url=s.endpoint_url, access_key_id=s.access_key_id,
                      secret_access_key=s.secret_access_key,
                      object_lock=ObjectLockConfig(days=2, maintain_every=dt.timedelta(hours=12),
                                                   extend_within=dt.timedelta(days=1)))
    storage = lockkeep.versioned(tier)
    assert storage.create_bucket_if_missing()
    storage.put("data/00/live", b"live")
    storage.put("data/00/pruned", b"pruned")
    storage.delete("data/00/pruned")  # prune's delete marker: its version is no longer live
    clock = FakeClock(dt.datetime.now(dt.timezone.utc))
    assert lockkeep.maintain(tier, clock, lambda *a: None).extended == 0  # fresh: nothing to do, no HEAD
    clock.advance(36 * 3600)  # 12 h of the 2-day lock left
    stats = lockkeep.maintain(tier, clock, lambda *a: None)
    assert (stats.live, stats.extended) == (1, 1)
    live = storage.retention("data/00/live")
    assert abs((live - (clock.now() + dt.timedelta(days=2))).total_seconds()) < 2
    [old] = [v for v in storage.list_versions("data/00/pruned") if not v.delete_marker]
    assert storage.retention(old.key, old.version_id) < live  # left to lapse
