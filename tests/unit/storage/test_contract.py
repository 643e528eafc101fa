"""The storage contract (ragbackup.storage.base.Storage), run against every backend.

In: exactly the stacks `open_storage()` builds for the controller: a LocalStorage on
tmp_path and Retrying(S3Storage) on a real SeaweedFS server. Out: the same behaviour
from both; backend specifics (file modes, S3 errors, optional capabilities) close the file.
"""
from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ragbackup import errors
from ragbackup.secret import Secret
from ragbackup.storage import (BucketCreator, LocalSettings, LocalStorage, ObjectInfo, Retrying, S3Settings,
                               S3Storage, Storage, open_storage)
from ragbackup.storage.local import TMP_PREFIX

MiB = 1024 * 1024
BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("s3", id="s3", marks=pytest.mark.s3),
]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """A fresh, empty store of each backend as `open_storage()` builds it (S3 under a key prefix)."""
    if request.param == "local":
        return open_storage(LocalSettings(str(tmp_path / "repo")))
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return open_storage(server.settings(bucket, prefix="repo/"))


def keys_of(infos) -> set[str]:
    return {info.key for info in infos}


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


# -- the contract ------------------------------------------------------------


def test_implements_protocol(store: Storage) -> None:
    assert isinstance(store, Storage)
    assert store.describe()


@pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 1000], ids=["empty", "one", "binary"])
def test_put_get_round_trip(store: Storage, data: bytes) -> None:
    store.put("snapshots/abc", data)
    assert store.get("snapshots/abc") == data
    assert store.size("snapshots/abc") == len(data)


def test_put_overwrites(store: Storage) -> None:
    store.put("config", b"first version, longer")
    store.put("config", b"second")
    assert store.get("config") == b"second"
    assert store.size("config") == 6


def test_get_range(store: Storage) -> None:
    data = os.urandom(10_000)
    store.put("data/ab/pack", data)
    assert store.get_range("data/ab/pack", 0, 10) == data[:10]
    assert store.get_range("data/ab/pack", 1234, 4321) == data[1234:5555]
    assert store.get_range("data/ab/pack", 9_990, 10) == data[-10:]
    assert store.get_range("data/ab/pack", 10_000, 0) == b""


def test_get_range_past_the_end_is_an_integrity_error(store: Storage) -> None:
    store.put("data/ab/pack", b"0123456789")
    with pytest.raises(errors.IntegrityError):
        store.get_range("data/ab/pack", 5, 10)
    with pytest.raises(errors.IntegrityError):
        store.get_range("data/ab/pack", 20, 1)
    with pytest.raises(ValueError):
        store.get_range("data/ab/pack", -1, 1)


def test_get_to_file(store: Storage, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    store.put("index/1", data)
    target = tmp_path / "out" / "index-1"
    target.parent.mkdir()
    store.get_to_file("index/1", str(target))
    assert target.read_bytes() == data
    assert os.listdir(target.parent) == ["index-1"]


def test_put_file_large(store: Storage, tmp_path: Path) -> None:
    """70 MiB: above the 64 MiB multipart threshold on S3; ranges cross part boundaries."""
    src = tmp_path / "big"
    with open(src, "wb") as f:
        f.writelines(os.urandom(MiB) for _ in range(70))
    store.put_file("data/cd/bigpack", str(src))
    assert store.size("data/cd/bigpack") == 70 * MiB
    with open(src, "rb") as f:
        f.seek(8 * MiB - 100)
        expected = f.read(200)
    assert store.get_range("data/cd/bigpack", 8 * MiB - 100, 200) == expected
    back = tmp_path / "back"
    store.get_to_file("data/cd/bigpack", str(back))
    assert file_digest(back) == file_digest(src)


def test_size_and_exists(store: Storage) -> None:
    assert not store.exists("keys/k1")
    store.put("keys/k1", b"12345")
    assert store.exists("keys/k1")
    assert store.size("keys/k1") == 5
    assert not store.exists("keys/k")
    assert not store.exists("keys")


def test_list_prefixes(store: Storage) -> None:
    objects = {"data/aa/1": b"a", "data/ab/2": b"bb", "data/b0/3": b"ccc", "index/1": b"", "config": b"cfg"}
    for key, data in objects.items():
        store.put(key, data)
    listing = store.list("")
    assert iter(listing) is listing, "list() must be lazy, not a materialised list"
    assert set(listing) == {ObjectInfo(k, len(v)) for k, v in objects.items()}
    assert keys_of(store.list("data/")) == {"data/aa/1", "data/ab/2", "data/b0/3"}
    assert keys_of(store.list("data/a")) == {"data/aa/1", "data/ab/2"}
    assert keys_of(store.list("data/aa")) == {"data/aa/1"}
    assert keys_of(store.list("data/aa/1")) == {"data/aa/1"}
    assert keys_of(store.list("conf")) == {"config"}
    assert keys_of(store.list("snapshots/")) == set()
    assert keys_of(store.list("nothing/here/")) == set()


def test_list_more_than_one_page(store: Storage) -> None:
    """1100 objects: S3 returns at most 1000 keys per page, so this pages."""
    keys = [f"data/{i % 7:02x}/{i:05d}" for i in range(1100)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: store.put(k, k.encode()), keys))
    store.put("index/outside", b"x")
    listed = list(store.list("data/"))
    assert len(listed) == 1100
    assert {info.key for info in listed} == set(keys)
    assert all(info.size == len(info.key) for info in listed)


def test_delete_is_idempotent(store: Storage) -> None:
    store.put("snapshots/s1", b"x")
    store.delete("snapshots/s1")
    assert not store.exists("snapshots/s1")
    store.delete("snapshots/s1")
    store.delete("snapshots/never-existed")
    assert keys_of(store.list("snapshots/")) == set()


def test_missing_key_raises_not_found(store: Storage, tmp_path: Path) -> None:
    calls = [
        lambda: store.get("data/ff/missing"),
        lambda: store.get_range("data/ff/missing", 0, 1),
        lambda: store.get_to_file("data/ff/missing", str(tmp_path / "out")),
        lambda: store.size("data/ff/missing"),
    ]
    for call in calls:
        with pytest.raises(errors.NotFound, match="data/ff/missing"):
            call()
    assert not (tmp_path / "out").exists()
    assert store.exists("data/ff/missing") is False


BAD_KEYS = ["", "/abs", "a//b", "a/", "../x", "a/../b", "a/./b", ".", f"data/{TMP_PREFIX}x", "a\x00b"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(store: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")
    with pytest.raises(ValueError):
        store.get(key)
    with pytest.raises(ValueError):
        store.delete(key)


@pytest.mark.parametrize("prefix", ["../", "/", "a//", "a/../"])
def test_bad_prefixes_are_refused(store: Storage, prefix: str) -> None:
    with pytest.raises(ValueError):
        store.list(prefix)  # checked at the call, before any iteration


# -- local filesystem specifics ------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(str(tmp_path / "repo"))


def test_local_leaves_no_temp_files(local: LocalStorage, tmp_path: Path) -> None:
    local.put("data/aa/1", b"x")
    local.put("data/aa/1", b"y")
    with pytest.raises(FileNotFoundError):
        local.put_file("data/aa/2", str(tmp_path / "no-such-file"))
    on_disk = [name for _, _, names in os.walk(tmp_path / "repo") for name in names]
    assert on_disk == ["1"]


def test_local_hides_in_flight_temp_files(local: LocalStorage, tmp_path: Path) -> None:
    local.put("data/aa/1", b"x")
    (tmp_path / "repo" / "data" / "aa" / f"{TMP_PREFIX}crashed").write_bytes(b"partial")
    (tmp_path / "repo" / f"{TMP_PREFIX}top").write_bytes(b"partial")
    assert keys_of(local.list("")) == {"data/aa/1"}
    assert keys_of(local.list("data/aa/")) == {"data/aa/1"}


def test_local_modes(local: LocalStorage, tmp_path: Path) -> None:
    old = os.umask(0o077)  # modes must not depend on the umask
    try:
        local.put("data/aa/1", b"x")
        src = tmp_path / "src"
        src.write_bytes(b"y")
        local.put_file("index/1", str(src))
    finally:
        os.umask(old)
    repo = tmp_path / "repo"
    for directory in (repo, repo / "data", repo / "data" / "aa", repo / "index"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750, directory
    for file in (repo / "data" / "aa" / "1", repo / "index" / "1"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o640, file


def test_local_without_fsync_behaves_the_same(tmp_path: Path) -> None:
    store = LocalStorage(str(tmp_path / "repo"), fsync=False)
    store.put("a/b", b"data")
    assert store.get("a/b") == b"data"


def test_local_directory_is_not_an_object(local: LocalStorage) -> None:
    local.put("data/aa/1", b"x")
    assert not local.exists("data/aa")
    with pytest.raises(errors.NotFound):
        local.get("data/aa")
    with pytest.raises(errors.NotFound):
        local.size("data")
    with pytest.raises(errors.NotFound):
        local.get("data/aa/1/below-a-file")


# -- S3 specifics ------------------------------------------------------------


@pytest.mark.s3
def test_s3_storage_class_per_prefix(s3_server, s3_bucket: str) -> None:
    classes = {"data/": "STANDARD_IA", "data/special/": "STANDARD"}
    store = S3Storage(s3_server.settings(s3_bucket, storage_class_for=classes))
    store.put("data/ab/1", b"x")
    store.put("data/special/1", b"x")
    store.put("index/1", b"x")
    client = s3_server.client()
    head = {k: client.head_object(Bucket=s3_bucket, Key=k) for k in ("data/ab/1", "data/special/1", "index/1")}
    assert head["data/ab/1"].get("StorageClass") == "STANDARD_IA"
    assert head["data/special/1"].get("StorageClass", "STANDARD") == "STANDARD"
    assert head["index/1"].get("StorageClass", "STANDARD") == "STANDARD"


@pytest.mark.s3
def test_s3_put_file_goes_multipart_above_the_threshold(s3_server, s3_bucket: str, tmp_path: Path) -> None:
    settings = s3_server.settings(s3_bucket, multipart_threshold=5 * MiB, storage_class_for={"data/": "STANDARD_IA"})
    store = S3Storage(settings)
    src = tmp_path / "pack"
    src.write_bytes(os.urandom(12 * MiB))
    store.put_file("data/ab/pack", str(src))
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="data/ab/pack")
    assert head["ETag"].strip('"').endswith("-2"), head["ETag"]  # two 8 MiB-or-less parts
    assert head.get("StorageClass") == "STANDARD_IA"
    assert store.get("data/ab/pack") == src.read_bytes()


@pytest.mark.s3
def test_s3_prefix_isolates_repositories(s3_server, s3_bucket: str) -> None:
    one = S3Storage(s3_server.settings(s3_bucket, prefix="one"))
    two = S3Storage(s3_server.settings(s3_bucket, prefix="/two/"))
    one.put("config", b"1")
    two.put("config", b"2")
    assert one.get("config") == b"1"
    assert keys_of(two.list("")) == {"config"}
    assert {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]} == {
        "one/config", "two/config"}


@pytest.mark.s3
def test_s3_missing_bucket_is_a_config_error(s3_server) -> None:
    store = S3Storage(s3_server.settings("no-such-bucket-here"))
    with pytest.raises(errors.ConfigError, match="no-such-bucket-here"):
        store.put("config", b"x")
    with pytest.raises(errors.ConfigError, match="does not exist"):
        list(store.list(""))


@pytest.mark.s3
def test_s3_create_bucket_if_missing(s3_server) -> None:
    """The capability is visible on the production stack (Retrying(S3Storage)), not only on S3Storage."""
    store = open_storage(s3_server.settings("created-by-init"))
    assert isinstance(store, Retrying) and isinstance(store, BucketCreator)
    assert store.create_bucket_if_missing() is True
    assert store.create_bucket_if_missing() is False
    store.put("config", b"x")
    assert store.get("config") == b"x"


def test_local_stack_has_no_bucket_to_create(tmp_path: Path) -> None:
    assert not isinstance(open_storage(LocalSettings(str(tmp_path / "repo"))), BucketCreator)
    assert not isinstance(Retrying(LocalStorage(str(tmp_path / "repo"))), BucketCreator)


@pytest.mark.s3
def test_s3_bad_credentials_are_config_errors_without_the_secret(s3_server, s3_bucket: str) -> None:
    wrong_secret = "wrong-secret-" + "z" * 20
    cases = [
        (s3_server.settings(s3_bucket, secret_access_key=Secret(wrong_secret)), "secret access key"),
        (s3_server.settings(s3_bucket, access_key_id=Secret("NOSUCHKEY"), secret_access_key=Secret(wrong_secret)),
         "access key id"),
    ]
    for settings, hint in cases:
        store = S3Storage(settings)
        with pytest.raises(errors.ConfigError, match=hint) as caught:
            store.get("config")
        assert wrong_secret not in str(caught.value)
        assert wrong_secret not in repr(store) and wrong_secret not in repr(settings)
        assert s3_server.secret_key not in repr(S3Storage(s3_server.settings(s3_bucket)))


def test_s3_settings_are_validated() -> None:
    with pytest.raises(errors.ConfigError, match="bucket"):
        settings_with(bucket="")
    with pytest.raises(errors.ConfigError, match="addressing_style"):
        settings_with(addressing_style="sideways")
    with pytest.raises(errors.ConfigError, match="secret_access_key"):
        settings_with(access_key_id=Secret("only-the-id"))


def settings_with(**overrides) -> S3Settings:
    return S3Settings(**{"endpoint_url": "http://127.0.0.1:9", "bucket": "b-1", **overrides})
