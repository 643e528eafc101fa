"""The dataset generator is deterministic from its seed, and the tree helpers the runner relies on are exact.

In: tiny datasets generated in tmp dirs (real chromadb and redis-server).
Out: assertions on digests and trees.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import dataset
from bench.tree import compare_trees, copy_tree, sync_tree, tree_digest

SCALE = 0.002

pytestmark = pytest.mark.slow

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds") / "a"
    dataset.generate(root, 42, SCALE)
    return root


@needs_redis
def test_same_seed_same_dataset(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "b"
    dataset.generate(again, 42, SCALE)
    assert dataset.digests(again) == dataset.digests(tiny)


@needs_redis
def test_other_seed_other_documents(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "c"
    dataset.generate(other, 7, SCALE)
    assert tree_digest(other / "documents") != tree_digest(tiny / "documents")


@needs_redis
def test_layout_and_counts(tiny: Path) -> None:
    assert sorted(p.name for p in tiny.iterdir()) == sorted(dataset.COMPONENTS)
    assert (tiny / "chroma" / "chroma.sqlite3").is_file()
    assert (tiny / "redis" / "dump.rdb").read_bytes()[:5] == b"REDIS"
    assert (tiny / "config" / ".env").stat().st_mode & 0o777 == 0o600
    digests = dataset.digests(tiny)
    assert digests["redis_keys"] == 2000
    assert sum(digests["chroma_counts"].values()) == 300


@needs_redis
def test_mutation_is_deterministic_and_changes_every_stateful_part(tiny: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "m1", tmp_path / "m2"
    copy_tree(tiny, a)
    copy_tree(tiny, b)
    dataset.mutate(a, 43, 1.0)
    dataset.mutate(b, 43, 1.0)
    da, db, d0 = dataset.digests(a), dataset.digests(b), dataset.digests(tiny)
    assert da == db
    for part in ("documents", "processing", "chroma", "redis"):
        assert da[part] != d0[part], part
    assert da["config"] == d0["config"]
    assert sum(da["chroma_counts"].values()) > sum(d0["chroma_counts"].values())


@needs_redis
def test_sync_tree_makes_a_copy_identical_in_place(tiny: Path, tmp_path: Path) -> None:
    mutated, work = tmp_path / "mut", tmp_path / "work"
    copy_tree(tiny, mutated)
    dataset.mutate(mutated, 43, 1.0)
    copy_tree(tiny, work)
    assert not compare_trees(mutated, work).ok
    assert sync_tree(mutated, work) > 0
    assert compare_trees(mutated, work).ok
    assert sync_tree(mutated, work) == 0


def test_compare_trees_reports_missing_extra_and_different(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "d").mkdir(parents=True)
        (root / "d" / "same").write_bytes(b"x" * 10)
    (a / "d" / "gone").write_bytes(b"1")
    (b / "d" / "new").write_bytes(b"2")
    (a / "f").write_bytes(b"abc")
    (b / "f").write_bytes(b"abd")
    cmp = compare_trees(a, b)
    assert (cmp.missing, cmp.extra, cmp.differ, cmp.ok) == (["d/gone"], ["d/new"], ["f"], False)
