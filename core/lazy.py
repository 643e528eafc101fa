"""Modules loaded on first use, so a daemon that never touches Docker or Redis never pays for them.

In: a module name. Out: the module object, registered in sys.modules; its code runs
when one of its attributes is first read (importlib.util.LazyLoader, the standard
library's recipe). A module already imported is returned as it is.
"""
from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """The module `name`, executed on first attribute access; ImportError now if it is not installed."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # as `import a.b` does: a later `import a.b` then `a.b.x` must find it
        setattr(importlib.import_module(parent), child, module)
    loader.exec_module(module)
    return module
