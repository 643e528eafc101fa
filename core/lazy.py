"""Modules loaded on first use, so a daemon that never touches Docker or Redis never pays for them.

In: a module name. Out: a stand-in module whose first attribute read imports the real
module (a plain `importlib.import_module`, under a lock) and whose every read is then
passed to it. A module already imported is returned as it is.

Why not importlib.util.LazyLoader: on Python 3.11 its module is not thread-safe. Two
threads reading its first attributes at once (two components restored in parallel
on a fresh agent, each asking Docker) saw a half-executed module: "module 'docker'
has no attribute 'errors'". A stand-in that imports under a lock cannot expose a
half-executed module, and the real import registers the module (and sets it on its
parent package) exactly as `import a.b` does.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType


class _Deferred(ModuleType):
    """Imports the module it stands for on the first attribute read; thread-safe."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lock"] = threading.Lock()
        self.__dict__["_real"] = None

    def _load(self) -> ModuleType:
        real = self.__dict__["_real"]
        if real is None:
            with self.__dict__["_lock"]:
                real = self.__dict__["_real"]
                if real is None:
                    real = importlib.import_module(self.__name__)
                    self.__dict__["_real"] = real
        return real

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._load())


def lazy_import(name: str) -> ModuleType:
    """The module `name`, imported on first attribute access; ImportError now if it is not installed."""
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"no module named {name!r}")
    return _Deferred(name)
