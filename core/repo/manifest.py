"""The snapshot manifest, typed: what a backup or an import writes as `snapshots/<id>`.

In: the parts a backup (agent stats, trees) or an import (archive walk) produces, or a
stored manifest's JSON. Out: frozen `Manifest` / `ComponentManifest` values with the few
derived numbers callers need (totals, tree ids, captures, kinds, the summary ragctl
prints), and `to_dict()` for storage. Field lookups on manifests live here only.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ragbackup import errors

VERSION = 1


@dataclass(frozen=True)
class ComponentManifest:
    """One component of a snapshot: where it came from, its trees, the agent's stats and facts."""

    kind: str
    agent: str = ""
    path: str = ""
    capture_id: str = ""
    parent: str = ""  # the snapshot an incremental capture was based on ("" for none)
    tree: tuple[str, ...] = ()  # tree blob ids, hex
    stats: dict[str, int] = field(default_factory=dict)  # files, dirs, bytes_total, bytes_read, bytes_sent, ...
    facts: dict[str, Any] = field(default_factory=dict)  # what a restore is checked against
    source: dict[str, Any] | None = None  # imports: the archive member and root it came from

    @property
    def files(self) -> int:
        return int(self.stats.get("files", 0))

    @property
    def bytes_total(self) -> int:
        return int(self.stats.get("bytes_total", 0))

    @property
    def bytes_read(self) -> int:
        return int(self.stats.get("bytes_read", 0))

    @property
    def bytes_sent(self) -> int:
        return int(self.stats.get("bytes_sent", 0))

    def tree_ids(self) -> list[bytes]:
        return [bytes.fromhex(t) for t in self.tree]

    def to_dict(self, with_tree: bool = True) -> dict:
        d = {"kind": self.kind, "agent": self.agent, "path": self.path, "capture_id": self.capture_id,
             "parent": self.parent, "tree": list(self.tree), "stats": dict(self.stats), "facts": self.facts}
        if not with_tree:
            del d["tree"]
        if self.source is not None:
            d["source"] = self.source
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ComponentManifest":
        return cls(kind=d.get("kind", ""), agent=d.get("agent", ""), path=d.get("path", ""),
                   capture_id=d.get("capture_id", ""), parent=d.get("parent", ""), tree=tuple(d.get("tree", ())),
                   stats=dict(d.get("stats", {})), facts=dict(d.get("facts", {})), source=d.get("source"))


@dataclass(frozen=True)
class StoreStats:
    """What writing the snapshot did to the repository (and what crossed the wire)."""

    bytes_total: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0
    blobs_new: int = 0
    bytes_new_raw: int = 0
    bytes_stored: int = 0
    packs: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "StoreStats":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Manifest:
    """A snapshot: id, when, why, by whom, its components and the repository stats of writing it."""

    id: str
    time: str  # ISO-8601 UTC, when the job started
    kind: str  # full | incremental | config | import
    components: dict[str, ComponentManifest]
    stats: StoreStats = field(default_factory=StoreStats)
    duration_s: float = 0.0
    reason: str = ""
    host: str = ""
    user: str = ""
    source: dict[str, Any] | None = None  # imports: the uploaded file and what it said about itself
    imported_at: str = ""  # imports: ISO-8601 UTC of the import (`time` is the backup's own)
    version: int = VERSION

    def tree_ids(self) -> list[bytes]:
        """Tree blob ids of every component."""
        return [t for c in self.components.values() for t in c.tree_ids()]

    def captures(self) -> dict[str, str]:
        """component -> capture id (what the next incremental backup builds on)."""
        return {n: c.capture_id for n, c in self.components.items()}

    def kinds(self) -> dict[str, str]:
        return {n: c.kind for n, c in self.components.items()}

    def totals(self) -> dict:
        """Summed file counts and sizes across components, and the bytes the snapshot added."""
        return {"files": sum(c.files for c in self.components.values()),
                "bytes_total": sum(c.bytes_total for c in self.components.values()),
                "bytes_added": self.stats.bytes_stored}

    def to_dict(self) -> dict:
        d = {"version": self.version, "id": self.id, "time": self.time, "duration_s": self.duration_s,
             "kind": self.kind, "reason": self.reason, "host": self.host, "user": self.user,
             "components": {n: c.to_dict() for n, c in self.components.items()},
             "stats": dataclasses.asdict(self.stats)}
        if self.imported_at:
            d["imported_at"] = self.imported_at
        if self.source is not None:
            d["source"] = self.source
        return d

    def summary(self) -> dict:
        """The manifest without tree ids (what ragctl prints)."""
        d = self.to_dict()
        d["components"] = {n: c.to_dict(with_tree=False) for n, c in self.components.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        comps = {n: ComponentManifest.from_dict(c) for n, c in d.get("components", {}).items()}
        return cls(id=d["id"], time=d["time"], kind=d.get("kind", ""), components=comps,
                   stats=StoreStats.from_dict(d.get("stats", {})), duration_s=float(d.get("duration_s", 0.0)),
                   reason=d.get("reason", ""), host=d.get("host", ""), user=d.get("user", ""),
                   source=d.get("source"), imported_at=d.get("imported_at", ""),
                   version=int(d.get("version", VERSION)))


def store_stats(components: dict[str, ComponentManifest], writer_stats, bytes_read: int, bytes_sent: int) -> StoreStats:
    """The manifest's stats from its components and a BlobWriter's counters."""
    w = writer_stats
    return StoreStats(bytes_total=sum(c.bytes_total for c in components.values()), bytes_read=bytes_read,
                      bytes_sent=bytes_sent, blobs_new=w.blobs_new, bytes_new_raw=w.bytes_new_raw,
                      bytes_stored=w.bytes_stored, packs=w.packs)


# --- reading a stored manifest ----------------------------------------------------------

_TEXT_KEYS = ("id", "time", "kind", "reason", "host", "user", "imported_at")
_COMPONENT_TEXT = ("kind", "agent", "path", "capture_id", "parent")


def parse_document(data: bytes, sid: str) -> dict:
    """A stored manifest's JSON, checked to have the shape `Manifest.from_dict` reads.

    IntegrityError naming the snapshot when it is not JSON or a field has the wrong type
    (a damaged manifest, or one no version of rag-backup wrote).
    """
    try:
        d = json.loads(data)
        _check_manifest(d)
    except (ValueError, RecursionError) as exc:
        raise errors.IntegrityError(f"snapshot {sid}: damaged manifest: {exc}") from None
    return d


def decode(data: bytes, sid: str) -> Manifest:
    """parse_document, typed."""
    return Manifest.from_dict(parse_document(data, sid))


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _counts(d: Any, what: str) -> None:
    _expect(isinstance(d, dict) and all(_number(v) for v in d.values()), f"{what} is not an object of numbers")


def _check_manifest(d: Any) -> None:
    _expect(isinstance(d, dict) and "id" in d and "time" in d, "not a manifest object (id, time)")
    for key in _TEXT_KEYS:
        _expect(isinstance(d.get(key, ""), str), f"{key} is not a string")
    _counts(d.get("stats", {}), "stats")
    _expect(_number(d.get("duration_s", 0)) and isinstance(d.get("version", VERSION), int),
            "duration_s or version is not a number")
    _expect(isinstance(d.get("source"), (dict, type(None))), "source is not an object")
    comps = d.get("components", {})
    _expect(isinstance(comps, dict), "components is not an object")
    for name, c in comps.items():
        _check_component(name, c)


def _check_component(name: str, c: Any) -> None:
    _expect(isinstance(c, dict), f"component {name!r} is not an object")
    for key in _COMPONENT_TEXT:
        _expect(isinstance(c.get(key, ""), str), f"component {name!r}: {key} is not a string")
    tree = c.get("tree", [])
    _expect(isinstance(tree, list) and all(isinstance(t, str) for t in tree), f"component {name!r}: bad tree")
    for t in tree:
        bytes.fromhex(t)  # ValueError when not hex
    _counts(c.get("stats", {}), f"component {name!r}: stats")
    _expect(isinstance(c.get("facts", {}), dict) and isinstance(c.get("source"), (dict, type(None))),
            f"component {name!r}: facts or source is not an object")
