"""A Storage wrapper that injects faults, for the reliability tests only.

In: any Storage and the JSON rules file named by RAG_BACKUP_STORAGE_FAULTS (read where
open_storage builds the stack; without the variable nothing is wrapped and nothing costs).
The file is read again whenever it changes, so a test starts and ends an outage while the
daemon runs. Out: the same Storage contract, where a call matching a rule (operation, key
prefix, call number) fails as a transient outage, fails for good, times out, reads short,
goes slow or meets a full volume; the backend below never sees a failed call. Each fault
applied is noted as one line (`op key fault`) in the file's sibling `<rules>.hits`, so a
test knows when a job has reached it.

A rule: {"ops": ["put_file", "write", ...], "prefix": "data/", "after": 2, "times": 1,
"fault": "error", "delay_s": 1.5}: skip the first `after` matching calls, then apply
`fault` to the next `times` (all, when absent). `ops` names Storage methods or the groups
`write` (put, put_file, adopt_file), `read` (get, get_range, get_to_file), `meta` (size,
exists, list), `delete` (delete, delete_many) and `*`.
"""
from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ragbackup import errors
from ragbackup.storage.base import ObjectInfo, Storage

FAULTS_ENV = "RAG_BACKUP_STORAGE_FAULTS"

GROUPS = {
    "write": ("put", "put_file", "adopt_file"),
    "read": ("get", "get_range", "get_to_file"),
    "meta": ("size", "exists", "list"),
    "delete": ("delete", "delete_many"),
}
FAULTS = ("error", "fatal", "timeout", "slow", "short_read", "enospc")


@dataclass
class Rule:
    """One fault: which calls it hits and what they meet."""

    ops: frozenset[str]
    fault: str
    prefix: str = ""
    after: int = 0
    times: int | None = None
    delay_s: float = 0.0
    seen: int = field(default=0, compare=False)  # matching calls so far

    def hits(self, op: str, key: str) -> bool:
        """Count a call; True when this one gets the fault."""
        if not (("*" in self.ops or op in self.ops) and key.startswith(self.prefix)):
            return False
        self.seen += 1
        n = self.seen - self.after
        return n >= 1 and (self.times is None or n <= self.times)


def parse_rules(text: str) -> list[Rule]:
    """The rules of a faults file; ValueError naming what is wrong."""
    rules = []
    for n, raw in enumerate(json.loads(text or "[]"), 1):
        fault = raw.get("fault")
        if fault not in FAULTS:
            raise ValueError(f"{FAULTS_ENV} rule {n}: fault {fault!r} is not one of {', '.join(FAULTS)}")
        ops = set()
        for op in raw.get("ops", ["*"]):
            ops.update(GROUPS.get(op, (op,)))
        rules.append(Rule(frozenset(ops), fault, raw.get("prefix", ""), int(raw.get("after", 0)),
                          raw.get("times"), float(raw.get("delay_s", 0.0))))
    return rules


class _RulesFile:
    """The rules in `path`, read again when the file changes (a missing file: no rules)."""

    def __init__(self, path: str):
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._rules: list[Rule] = []
        self._lock = threading.Lock()

    def match(self, op: str, key: str) -> Rule | None:
        with self._lock:
            self._reload()
            hit = None
            for rule in self._rules:
                if rule.hits(op, key) and hit is None:
                    hit = rule
            return hit

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._rules = None, []
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            with open(self.path, encoding="utf-8") as f:
                self._rules = parse_rules(f.read())
            self._stamp = stamp


class FaultyStorage:
    """`inner` with the faults of a rules file applied before each call reaches it."""

    def __init__(self, inner: Storage, rules_path: str):
        self.inner = inner
        self._rules = _RulesFile(rules_path)

    def __repr__(self) -> str:
        return f"FaultyStorage({self.inner!r})"

    def __getattr__(self, name: str):
        """Optional capabilities (create_bucket_if_missing) pass through when `inner` has them."""
        return getattr(self.inner, name)

    def describe(self) -> str:
        return self.inner.describe()

    def put(self, key: str, data: bytes) -> None:
        self._before("put", key)
        self.inner.put(key, data)

    def put_file(self, key: str, path: str) -> None:
        self._before("put_file", key)
        self.inner.put_file(key, path)

    def get(self, key: str) -> bytes:
        short = self._before("get", key)
        data = self.inner.get(key)
        return data[: len(data) // 2] if short else data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        short = self._before("get_range", key)
        data = self.inner.get_range(key, offset, length)
        return data[: len(data) // 2] if short else data

    def get_to_file(self, key: str, path: str) -> None:
        short = self._before("get_to_file", key)
        self.inner.get_to_file(key, path)
        if short:
            os.truncate(path, os.path.getsize(path) // 2)

    def size(self, key: str) -> int:
        self._before("size", key)
        return self.inner.size(key)

    def exists(self, key: str) -> bool:
        self._before("exists", key)
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._before("list", prefix)
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self._before("delete", key)
        self.inner.delete(key)

    def delete_many(self, keys: list[str]) -> None:
        self._before("delete_many", keys[0] if keys else "")
        self.inner.delete_many(keys)

    @property
    def adopt_file(self):
        """LocalStorage's rename of a staged pack into place, faulted as a write."""
        adopt = self.inner.adopt_file  # AttributeError when the backend has none: callers fall back

        def faulty_adopt(key: str, path: str) -> None:
            self._before("adopt_file", key)
            adopt(key, path)
        return faulty_adopt

    def _before(self, op: str, key: str) -> bool:
        """Apply the fault a rule gives this call; True when the call is to read short."""
        rule = self._rules.match(op, key)
        if rule is None:
            return False
        with open(self._rules.path + ".hits", "a", encoding="utf-8") as f:
            f.write(f"{op} {key} {rule.fault}\n")
        return _apply(rule, op, key, self.inner.describe())


def _apply(rule: Rule, op: str, key: str, where: str) -> bool:
    """Raise, sleep or ask for a short read, as `rule` says."""
    if rule.fault in ("slow", "timeout"):
        time.sleep(rule.delay_s)
    if rule.fault in ("error", "timeout"):
        what = "timed out" if rule.fault == "timeout" else "503 ServiceUnavailable"
        raise errors.StorageUnavailable(f"{where}: {op} {key!r} failed: {what} (injected fault)")
    if rule.fault == "fatal":
        raise errors.RepositoryError(f"{where}: {op} {key!r} failed: 403 AccessDenied (injected fault)")
    if rule.fault == "enospc":
        raise errors.RepositoryNoSpace(f"repository: cannot {op} {where}/{key}: No space left on device "
                                       f"(ENOSPC, errno {errno.ENOSPC}; injected fault)")
    return rule.fault == "short_read"


def wrap_from_env(storage: Storage) -> Storage:
    """`storage` wrapped in FaultyStorage when RAG_BACKUP_STORAGE_FAULTS names a rules file, else itself."""
    path = os.environ.get(FAULTS_ENV)
    return FaultyStorage(storage, path) if path else storage
