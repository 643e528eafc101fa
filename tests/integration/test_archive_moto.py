"""Archive sets against moto (the one server here that models archive classes): a set holds only
what its snapshot needs, its packs in GLACIER answer InvalidObjectState until the tool issues
RestoreObject, and the set then restores; the estimate says it is slower than a 1 h RTO."""
from __future__ import annotations

import datetime as dt
import os

import pytest
from botocore.exceptions import ClientError

from ragbackup import errors
from ragbackup.clock import FakeClock
from ragbackup.config import TierConfig
from ragbackup.repo import chunking
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.repository import RepoParams, Repository
from ragbackup.repo.tree import Entry, encode_lines
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import LocalStorage
from ragbackup.tier_options import ArchiveConfig

from ragbackup.controller import archive, archive_thaw

PASS = Unlocker("passphrase", b"correct horse")
HOUR = dt.timedelta(hours=1)


def _snapshot(repo, tmp_path, sid, files):
    w = BlobWriter(repo, str(tmp_path / "staging"))
    comp = chunking.Compressor()
    entries = [Entry(path=name.encode(), type="file", size=len(data),
                     chunks=[w.add_plain(data[i:i + 50_000], BLOB_DATA, comp) for i in range(0, len(data), 50_000)])
               for name, data in sorted(files.items())]
    lines = tmp_path / f"tree-{sid}"
    lines.write_bytes(b"".join(encode_lines(entries)))
    trees = w.add_tree(str(lines))
    w.commit()
    w.close()
    manifest = {"version": 1, "id": sid, "time": "2026-11-01T02:00:00Z", "kind": "full",
                "components": {"docs": {"kind": "paths", "tree": [t.hex() for t in trees], "stats": {}}}}
    repo.save_snapshot(manifest)
    return manifest


def _read_all(repo, manifest):
    comp = manifest["components"]["docs"]
    return {e.path.decode(): b"".join(repo.read_blob(c) for c in e.chunks)
            for e in repo.read_tree(bytes.fromhex(t) for t in comp["tree"])}


@pytest.fixture
def primary(tmp_path):
    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache"),
                           RepoParams(pack_size=256 * 1024))
    yield repo
    repo.close()


def _tier(moto_s3, bucket, **kw) -> TierConfig:
    s = moto_s3.settings(bucket)
    return TierConfig("archive", bucket, endpoint_url=s.endpoint_url, region=s.region, access_key_id=s.access_key_id,
                      secret_access_key=s.secret_access_key, kind="archive", archive=ArchiveConfig(**kw))


class NoSleep:
    def __init__(self, clock):
        self.clock, self.calls = clock, 0

    def __call__(self, seconds):
        self.calls += 1
        self.clock.advance(seconds)


def _freeze(moto_s3, tier, sid):
    """What lifecycle does after 30 days: the set's packs move to GLACIER (moto stores the class)."""
    client = moto_s3.client()
    prefix = f"sets/{sid}/data/"
    for obj in client.list_objects_v2(Bucket=tier.bucket, Prefix=prefix)["Contents"]:
        client.copy_object(Bucket=tier.bucket, Key=obj["Key"], CopySource={"Bucket": tier.bucket, "Key": obj["Key"]},
                           StorageClass="GLACIER", MetadataDirective="COPY", TaggingDirective="COPY")
    return [o["Key"] for o in client.list_objects_v2(Bucket=tier.bucket, Prefix=prefix)["Contents"]]


def test_a_set_holds_only_its_snapshot_and_restores_from_glacier_after_restore_object(moto_s3, primary, tmp_path):
    old = _snapshot(primary, tmp_path, "rag-system-backup-20261001_020000", {"old.bin": os.urandom(600_000)})
    files = {"a.txt": b"alpha " * 40_000, "b.bin": os.urandom(900_000)}
    new = _snapshot(primary, tmp_path, "rag-system-backup-20261101_020000", files)
    tier = _tier(moto_s3, moto_s3.make_bucket("arch"))
    sid = new["id"]
    stats = archive.write_set(primary, PASS, sid, archive.set_storage(tier, sid), str(tmp_path / "work"))
    assert stats.packs >= 1 and not stats.skipped
    assert archive.archived_ids(archive.tier_root(tier)) == [sid]
    client = moto_s3.client()
    [key, *_] = [o["Key"] for o in client.list_objects_v2(Bucket=tier.bucket, Prefix=f"sets/{sid}/data/")["Contents"]]
    tags = client.get_object_tagging(Bucket=tier.bucket, Key=key)["TagSet"]
    assert {"Key": "rag-backup-object", "Value": "pack"} in tags
    assert archive.write_set(primary, PASS, sid, archive.set_storage(tier, sid), str(tmp_path / "work")).skipped

    before = archive.describe_set(tier, sid)
    assert not before.estimate.slower_than(HOUR)
    packs = _freeze(moto_s3, tier, sid)
    frozen = archive.describe_set(tier, sid)
    assert frozen.classes == ("GLACIER",) and frozen.estimate.slower_than(HOUR) and frozen.estimate.text() == "3-5 h"
    with pytest.raises(ClientError) as exc:
        client.get_object(Bucket=tier.bucket, Key=packs[0])
    assert exc.value.response["Error"]["Code"] == "InvalidObjectState"

    repo = archive.open_set(tier, sid, PASS, str(tmp_path / "set-cache"))  # metadata stays readable
    assert repo.snapshot_ids() == [sid]
    with pytest.raises(errors.RagBackupError):
        _read_all(repo, new)
    clock = FakeClock(dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc))
    seen = []
    report = archive_thaw.thaw(archive.set_storage(tier, sid), tier.archive, clock, NoSleep(clock),
                               lambda stage, done, total: seen.append((done, total)))
    assert report.objects == len(packs) == report.requested
    assert seen[-1] == (len(packs), len(packs))
    assert _read_all(repo, new) == files
    assert old["id"] not in repo.snapshot_ids()
    repo.close()


def test_thaw_gives_up_after_the_configured_wait_naming_what_is_left(moto_s3, primary, tmp_path, monkeypatch):
    new = _snapshot(primary, tmp_path, "rag-system-backup-20261101_020000", {"a": os.urandom(300_000)})
    tier = _tier(moto_s3, moto_s3.make_bucket("arch"), restore_wait=dt.timedelta(hours=2))
    storage = archive.set_storage(tier, new["id"])
    archive.write_set(primary, PASS, new["id"], storage, str(tmp_path / "work"))
    _freeze(moto_s3, tier, new["id"])
    # moto completes restores at once; a real archive class takes hours: model that by ignoring requests
    monkeypatch.setattr(type(storage), "request_restore", lambda self, key, days, tier="Standard": None)
    clock = FakeClock(dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc))
    sleep = NoSleep(clock)
    with pytest.raises(errors.StorageUnavailable, match=r"still being restored .* after 2:00:00"):
        archive_thaw.thaw(storage, tier.archive, clock, sleep, lambda *a: None)
    assert sleep.calls == 120  # one poll a minute for two hours


def test_a_set_is_packed_in_restore_order_each_component_in_packs_of_its_own(moto_s3, primary, tmp_path):
    w = BlobWriter(primary, str(tmp_path / "staging"))
    comp = chunking.Compressor()
    data = {name: [os.urandom(20_000) for _ in range(8)] for name in ("docs", "redis")}
    ids: dict[str, list[bytes]] = {name: [] for name in data}
    for i in range(8):  # interleaved in the primary's packs
        for name in data:
            ids[name].append(w.add_plain(data[name][i], BLOB_DATA, comp))
    comps = {}
    for name in data:
        lines = tmp_path / f"tree-{name}"
        lines.write_bytes(b"".join(encode_lines([Entry(path=b"f", type="file", size=160_000, chunks=ids[name])])))
        comps[name] = {"kind": "paths", "tree": [t.hex() for t in w.add_tree(str(lines))], "stats": {}}
    w.commit()
    w.close()
    sid = "rag-system-backup-20261101_020000"
    primary.save_snapshot({"version": 1, "id": sid, "time": "2026-11-01T02:00:00Z", "kind": "full",
                           "components": comps})
    tier = _tier(moto_s3, moto_s3.make_bucket("order"))
    archive.write_set(primary, PASS, sid, archive.set_storage(tier, sid), str(tmp_path / "work"))

    repo = archive.open_set(tier, sid, PASS, str(tmp_path / "set-cache"))
    packs = set()
    for name in data:
        found = repo.index.lookup_many(ids[name])
        locs = [found[i] for i in ids[name]]
        assert len({loc.pack for loc in locs}) == 1, name  # 160 kB: one pack of its own (256 KiB packs)
        assert [loc.offset for loc in locs] == sorted(loc.offset for loc in locs), name  # in the file's order
        packs.add(locs[0].pack)
        assert b"".join(repo.read_blob(c) for c in ids[name]) == b"".join(data[name])
    assert len(packs) == 2
    repo.close()
