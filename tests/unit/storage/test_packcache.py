"""PackCache: ranged reads of packs come from one whole-pack download each, within a byte budget."""
import threading

import pytest

from ragbackup import errors
from ragbackup.storage.local import LocalStorage
from ragbackup.storage.packcache import PackCache


class Counting(LocalStorage):
    def __init__(self, root):
        super().__init__(root)
        self.downloads = []

    def get_to_file(self, key, path):
        self.downloads.append(key)
        super().get_to_file(key, path)


@pytest.fixture
def stores(tmp_path):
    inner = Counting(str(tmp_path / "repo"))
    for n in range(3):
        inner.put(f"data/0{n}/pack{n}", bytes([n]) * 1000 + bytes(range(256)))
    inner.put("index/i", b"index-bytes")
    return inner, PackCache(inner, str(tmp_path / "cache"), budget=2600)


def test_ranges_come_from_one_download_per_pack(stores):
    inner, cache = stores
    assert cache.get_range("data/00/pack0", 1000, 4) == bytes([0, 1, 2, 3])
    assert cache.get_range("data/00/pack0", 0, 2) == b"\x00\x00"
    assert cache.get_range("index/i", 0, 5) == b"index" and inner.downloads == ["data/00/pack0"]
    with pytest.raises(errors.IntegrityError):
        cache.get_range("data/00/pack0", 1200, 100)  # past the end


def test_concurrent_readers_share_one_download(stores):
    inner, cache = stores
    threads = [threading.Thread(target=cache.get_range, args=("data/01/pack1", 10, 10)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inner.downloads == ["data/01/pack1"]


def test_budget_evicts_the_least_recently_used(stores, tmp_path):
    inner, cache = stores
    for n in (0, 1, 0, 2):  # 1256 bytes each, budget 2600: two fit; pack1 is the least recently used
        cache.get_range(f"data/0{n}/pack{n}", 0, 1)
    cache.get_range("data/00/pack0", 0, 1)
    cache.get_range("data/01/pack1", 0, 1)
    assert inner.downloads == ["data/00/pack0", "data/01/pack1", "data/02/pack2", "data/01/pack1"]
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_delete_drops_the_local_copy(stores, tmp_path):
    inner, cache = stores
    cache.get_range("data/00/pack0", 0, 1)
    cache.delete_many(["data/00/pack0"])
    assert not list((tmp_path / "cache").iterdir()) and not inner.exists("data/00/pack0")


def test_read_ahead_fetches_the_next_packs_in_read_order(stores):
    inner, cache = stores
    cache.read_ahead(["data/02/pack2", "data/00/pack0"])
    cache.get_range("data/02/pack2", 0, 1)
    cache._pool.shutdown(wait=True)  # the read-ahead downloads are done
    assert sorted(inner.downloads) == ["data/00/pack0", "data/02/pack2"]  # pack1 is not read: never fetched
    cache.get_range("data/00/pack0", 0, 1)
    assert len(inner.downloads) == 2


def test_an_order_found_while_reading_extends_the_read_ahead(stores, monkeypatch):
    inner, cache = stores
    monkeypatch.setattr("ragbackup.storage.packcache.READ_AHEAD", 1)
    cache.read_ahead(["data/00/pack0"])
    cache.get_range("data/00/pack0", 0, 1)  # pack1 is not known yet: nothing ahead of pack0
    cache._pool.shutdown(wait=True)
    assert inner.downloads == ["data/00/pack0"]
    cache._pool = None
    cache.read_ahead(["data/00/pack0", "data/02/pack2"], more=True)  # pack0 keeps its place
    assert cache._keys == ["data/00/pack0", "data/02/pack2"]
    cache.get_range("data/00/pack0", 1, 1)  # the next read of pack0 starts pack2
    cache._pool.shutdown(wait=True)
    assert inner.downloads == ["data/00/pack0", "data/02/pack2"]
    cache._pool = None
    cache.read_ahead(["data/01/pack1"])  # a new order: pack1 is its first, fetched at once
    cache._pool.shutdown(wait=True)
    assert cache._keys == ["data/01/pack1"] and inner.downloads[-1] == "data/01/pack1"
