"""A sample of the soak (bench/soak.py): daily backups with churn under an injected clock, forget and prune between.

The full soak is `python -m bench.soak --cycles 200 --workdir DIR` (docs/RELIABILITY.md).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from reliability.conftest import size


def _soak_module():
    """bench/soak.py, loaded by path (the repository root stays off sys.path, as in tests/bench)."""
    if "bench_soak" in sys.modules:
        return sys.modules["bench_soak"]
    path = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
    spec = importlib.util.spec_from_file_location("bench_soak", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_soak"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.slow

CYCLES = size(fast=8, long=60)


def test_soak_every_kept_snapshot_restores_identical(tmp_path, record_property):
    """days of backups with churn, forget and prune every 7 days: every kept snapshot restores byte-identical"""
    soak = _soak_module()
    summary = soak.run_soak(str(tmp_path / "soak"), soak.Soak(CYCLES, files=120, seed=3))
    print(summary)
    assert summary["different"] == [], f"restores that differ: {summary['different']}"
    assert summary["forgotten"] > 0 and summary["kept"] > 0, summary
    record_property("tries", CYCLES)
    record_property("detail", f"{summary['cycles']} days, {summary['kept']} kept and restored byte-identical, "
                              f"{summary['forgotten']} forgotten and pruned")
