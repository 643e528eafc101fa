"""PackCache: ranged reads of packs come from one whole-pack download each, within a byte budget."""
import threading
import time

import pytest

from ragbackup import errors
from ragbackup.storage.local import LocalStorage
from ragbackup.storage.packcache import PackCache


class Counting(LocalStorage):
    def __init__(self, root):
        super().__init__(root)
        self.downloads = []

    def get(self, key):
        self.downloads.append(key)
        return super().get(key)


@pytest.fixture
def stores(tmp_path):
    inner = Counting(str(tmp_path / "repo"))
    for n in range(3):
        inner.put(f"data/0{n}/pack{n}", bytes([n]) * 1000 + bytes(range(256)))
    inner.put("index/i", b"index-bytes")
    return inner, PackCache(inner, budget=2600)


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


def test_budget_evicts_the_least_recently_used(stores):
    inner, cache = stores
    for n in (0, 1, 0, 2):  # 1256 bytes each, budget 2600: two fit; pack1 is the least recently used
        cache.get_range(f"data/0{n}/pack{n}", 0, 1)
    cache.get_range("data/00/pack0", 0, 1)
    cache.get_range("data/01/pack1", 0, 1)
    assert inner.downloads == ["data/00/pack0", "data/01/pack1", "data/02/pack2", "data/01/pack1"]
    assert cache.held_bytes() == 2 * 1256


def test_delete_drops_the_held_copy(stores):
    inner, cache = stores
    cache.get_range("data/00/pack0", 0, 1)
    cache.delete_many(["data/00/pack0"])
    assert cache.held_bytes() == 0 and not inner.exists("data/00/pack0")
    with pytest.raises(errors.NotFound):
        cache.get_range("data/00/pack0", 0, 1)  # not answered from a copy of what was deleted


def test_a_pack_over_the_budget_is_held_alone(tmp_path):
    inner = Counting(str(tmp_path / "repo"))
    inner.put("data/00/big", b"x" * 5000)
    inner.put("data/01/small", b"y" * 100)
    cache = PackCache(inner, budget=2600)
    assert cache.get_range("data/00/big", 4990, 10) == b"x" * 10 and cache.held_bytes() == 5000
    cache.get_range("data/01/small", 0, 1)
    assert cache.held_bytes() == 100  # the big one made room for the one read last


def test_a_failed_download_is_retried_by_the_next_read(tmp_path):
    inner = Counting(str(tmp_path / "repo"))
    with pytest.raises(errors.NotFound):
        PackCache(inner).get_range("data/00/late", 0, 1)
    cache = PackCache(inner)
    with pytest.raises(errors.NotFound):
        cache.get_range("data/00/late", 0, 1)
    inner.put("data/00/late", b"here")
    assert cache.get_range("data/00/late", 0, 4) == b"here" and len(inner.downloads) == 3


def test_read_ahead_fetches_the_next_packs_in_read_order(stores):
    inner, cache = stores
    cache.read_ahead(["data/02/pack2", "data/00/pack0"])
    cache.get_range("data/02/pack2", 0, 1)
    cache._pool.shutdown(wait=True)  # the read-ahead downloads are done
    assert sorted(inner.downloads) == ["data/00/pack0", "data/02/pack2"]  # pack1 is not read: never fetched
    cache.get_range("data/00/pack0", 0, 1)
    assert len(inner.downloads) == 2


def test_an_order_found_while_reading_extends_the_read_ahead(stores):
    inner, cache = stores
    cache.ahead = 1
    cache.read_ahead(["data/00/pack0"])
    cache.get_range("data/00/pack0", 0, 1)  # pack1 is not known yet: nothing ahead of pack0
    cache._pool.shutdown(wait=True)
    assert inner.downloads == ["data/00/pack0"]
    cache._pool = None
    cache.read_ahead(["data/00/pack0", "data/02/pack2"], more=True)  # pack0 keeps its place
    assert cache._orders[None].keys == ["data/00/pack0", "data/02/pack2"]
    cache.get_range("data/00/pack0", 1, 1)  # the next read of pack0 starts pack2
    cache._pool.shutdown(wait=True)
    assert inner.downloads == ["data/00/pack0", "data/02/pack2"]
    cache._pool = None
    cache.read_ahead(["data/01/pack1"])  # a new order: pack1 is its first, fetched at once
    cache._pool.shutdown(wait=True)
    assert cache._orders[None].keys == ["data/01/pack1"] and inner.downloads[-1] == "data/01/pack1"


class _Now:
    """An executor that runs each task at once, on the caller's thread: read-ahead in a fixed order."""

    def submit(self, fn, *args):
        fn(*args)


def test_a_pack_is_fetched_ahead_once_per_order(stores):
    inner, _ = stores
    cache = PackCache(inner, budget=1300, ahead=1)  # one pack at a time
    cache._pool = _Now()
    cache.read_ahead(["data/00/pack0", "data/01/pack1", "data/02/pack2"])  # pack0: trees, read by each component
    for n in (0, 1, 2, 0):  # a second component begins with the trees again
        cache.get_range(f"data/0{n}/pack{n}", 0, 1)
    # each read after another pack took the room fetches again; the last read of pack0 does not fetch pack1 ahead
    assert [k[-1] for k in inner.downloads] == ["0", "1", "0", "2", "1", "2", "0"]


def test_packs_are_dropped_once_no_read_came_for_the_idle_time(tmp_path):
    """Copies stay while reads keep coming; idle_release seconds after the last read all are dropped,
    and a later read downloads its pack again."""
    inner = Counting(str(tmp_path / "repo"))
    inner.put("data/00/pack0", bytes(1000))
    cache = PackCache(inner, idle_release=0.4)
    cache.get_range("data/00/pack0", 0, 1)
    for _ in range(4):  # reads every 0.2 s: never idle for 0.4 s
        time.sleep(0.2)
        cache.get_range("data/00/pack0", 0, 1)
    assert cache.held_bytes() == 1000 and inner.downloads == ["data/00/pack0"]
    deadline = time.monotonic() + 10
    while cache.held_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.held_bytes() == 0
    assert cache.get_range("data/00/pack0", 0, 2) == b"\x00\x00"
    assert inner.downloads == ["data/00/pack0", "data/00/pack0"]


def test_a_failed_download_does_not_keep_the_copies_held(tmp_path):
    """A download that failed is not counted as one still running: the idle release still comes."""
    inner = Counting(str(tmp_path / "repo"))
    inner.put("data/00/pack0", bytes(500))
    cache = PackCache(inner, idle_release=0.3)
    cache.get_range("data/00/pack0", 0, 1)
    with pytest.raises(errors.NotFound):
        cache.get_range("data/00/missing", 0, 1)
    deadline = time.monotonic() + 10
    while cache.held_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.held_bytes() == 0


def test_two_readers_at_once_each_keep_their_own_order(stores):
    """A second restore from the tier starting its order does not erase the first's: a read of the
    first's pack still fetches the pack after it in the first's order; an ended order fetches nothing."""
    inner, _ = stores
    cache = PackCache(inner, ahead=1)
    cache._pool = _Now()
    first, second = object(), object()
    cache.read_ahead(["data/00/pack0", "data/01/pack1"], order=first)  # pack0 fetched at once
    cache.read_ahead(["data/02/pack2"], order=second)  # pack2 fetched at once
    cache.get_range("data/00/pack0", 0, 1)  # the first's order: pack1 next
    assert [k[-1] for k in inner.downloads] == ["0", "2", "1"]
    cache.end_order(first)
    cache._held.clear()
    cache.get_range("data/00/pack0", 0, 1)  # no order holds pack0 now: only itself
    assert [k[-1] for k in inner.downloads] == ["0", "2", "1", "0"]


def test_no_read_ahead_when_the_tier_asks_for_none(stores):
    """ahead = 0 (a tier's read_ahead = 0): an order given fetches nothing before its reads."""
    inner, _ = stores
    cache = PackCache(inner, ahead=0)
    cache._pool = _Now()
    cache.read_ahead(["data/00/pack0", "data/01/pack1"])
    cache.get_range("data/00/pack0", 0, 1)
    assert inner.downloads == ["data/00/pack0"]
