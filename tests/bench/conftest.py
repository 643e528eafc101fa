"""Makes the repository's bench/ package importable as `bench` for these tests (and only it).

In: the repository root. Out: sys.modules["bench"], without putting the root on sys.path
(which would expose agent/, controller/ as top-level packages).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load_bench() -> None:
    if "bench" in sys.modules:
        return
    init = REPO / "bench" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "bench", init, submodule_search_locations=[str(init.parent)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module
    spec.loader.exec_module(module)


_load_bench()
