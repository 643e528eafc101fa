"""lazy_import: the real module on first use, whole, from any number of threads at once."""
from __future__ import annotations

import sys
import threading

import pytest
from ragbackup.lazy import lazy_import

SLOW_MODULE = """
import time
time.sleep(0.3)  # a module whose import takes a while (docker's does)
from . import helper
VALUE = helper.VALUE + 1
"""


@pytest.fixture
def slow_package(tmp_path, monkeypatch):
    pkg = tmp_path / "ragtest_slowpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("VALUE = 41\n")
    (pkg / "slow.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "ragtest_slowpkg.slow"
    for name in [n for n in sys.modules if n.startswith("ragtest_slowpkg")]:
        del sys.modules[name]


def test_threads_reading_at_once_all_see_the_whole_module(slow_package):
    mod = lazy_import(slow_package)
    seen, failed = [], []

    def read():
        try:
            seen.append(mod.VALUE)
        except Exception as exc:  # the old LazyLoader: AttributeError from a half-run module
            failed.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failed == [] and seen == [42] * 8


def test_the_real_module_is_registered_and_set_on_its_parent(slow_package):
    mod = lazy_import(slow_package)
    assert slow_package not in sys.modules  # nothing runs before first use
    assert mod.VALUE == 42
    import ragtest_slowpkg
    assert sys.modules[slow_package] is ragtest_slowpkg.slow
    assert ragtest_slowpkg.slow.VALUE == 42


def test_a_missing_module_fails_at_once():
    with pytest.raises(ImportError, match="ragtest_no_such_module"):
        lazy_import("ragtest_no_such_module")


def test_an_imported_module_is_returned_as_it_is():
    assert lazy_import("json") is sys.modules["json"]
