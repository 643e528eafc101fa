"""The runbook's tarball layout, shared by export and import (pure).

In: component names and kinds, inner tarball names. Out: each component's tarball name on
export, the component each tarball becomes on import, and the manifest.json beside them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ragbackup import errors
from ragbackup.clock import parse_iso, stamp
from ragbackup.config import COMPONENT_KINDS
from ragbackup.repo.manifest import Manifest

MANIFEST = "manifest.json"
SUFFIXES = (".tar.gz", ".tgz", ".tar")
STATE_NAMES = ("processing", "state")  # paths components the runbook calls state.tar.gz
_KIND_STEMS = {"chroma": "chromadb", "redis": "redis", "config": "config"}
_STEM_KINDS = {"chromadb": "chroma", "chroma": "chroma", "redis": "redis", "config": "config"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Target:
    """The component an inner tarball becomes; `configured` when the controller's config declares it."""

    name: str
    kind: str
    configured: bool


def runbook_stem(name: str, kind: str) -> str:
    """The runbook's name for a component's tarball, without `.tar.gz`."""
    if kind in _KIND_STEMS:
        return _KIND_STEMS[kind]
    if kind == "paths" and name in STATE_NAMES:
        return "state"
    return name


def inner_names(components: dict[str, str]) -> dict[str, str]:
    """Component name -> inner tarball name: the runbook's name, the component's own on a clash.

    Components whose runbook name comes from their kind (a chroma component named `vectors`
    -> chromadb) choose first, so the runbook's names hold the data a person expects there.
    """
    taken: set[str] = set()
    out: dict[str, str] = {}
    for name in sorted(components, key=lambda n: (runbook_stem(n, components[n]) == n, n)):
        kind = components[name]
        stem = _claim([runbook_stem(name, kind), name, f"{name}-{kind}"], taken)
        taken.add(stem)
        out[name] = f"{stem}.tar.gz"
    return out


def _claim(wanted: list[str], taken: set[str]) -> str:
    for w in wanted:
        if w not in taken:
            return w
    n = 2
    while f"{wanted[-1]}-{n}" in taken:
        n += 1
    return f"{wanted[-1]}-{n}"


def stem_of(filename: str) -> str | None:
    """`chromadb` for `.../chromadb.tar.gz` (also .tgz, .tar); None when it is not a tarball's name."""
    base = filename.rsplit("/", 1)[-1]
    for suffix in SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[:-len(suffix)]
    return None


def check_component_name(name: str, where: str) -> str:
    """A name safe as a component (a directory name on restore); UsageError otherwise."""
    if not _NAME_RE.match(name):
        raise errors.UsageError(f"{where}: {name!r} cannot be a component name (letters, digits, "
                                "'_', '.', '-'; not starting with '.' or '-'); rename the tarball")
    return name


def map_archive(stem: str, configured: dict[str, str], hint: tuple[str, str] | None = None) -> Target:
    """Which component an inner tarball becomes.

    `configured` maps the controller's component names to kinds; `hint` is (name, kind) from
    an export's manifest.json. Order: the hinted name, a component named like the tarball,
    the one configured component of the tarball's kind (chromadb, redis, config; state ->
    processing or state), else a new component named after the tarball.
    """
    name, kind = hint if hint else (stem, "")
    if name in configured:
        return Target(name, configured[name], True)
    if hint:
        return Target(name, kind, False)
    kind = _STEM_KINDS.get(stem, "")
    same_kind = [n for n, k in configured.items() if k == kind]
    if kind and len(same_kind) == 1:
        return Target(same_kind[0], kind, True)
    if stem == "state":
        for n in STATE_NAMES:
            if configured.get(n) == "paths":
                return Target(n, "paths", True)
    return Target(stem, kind or "paths", False)


def archive_hints(manifest: dict | None) -> dict[str, tuple[str, str]]:
    """Inner tarball name -> (component, kind) from an export's manifest.json; bad entries are ignored."""
    archives = manifest.get("archives") if isinstance(manifest, dict) else None
    if not isinstance(archives, dict):
        return {}
    out = {}
    for fname, v in archives.items():
        if not (isinstance(v, dict) and isinstance(v.get("component"), str) and isinstance(fname, str)):
            continue
        if _NAME_RE.match(v["component"]) and v.get("kind") in COMPONENT_KINDS:
            out[fname] = (v["component"], v["kind"])
    return out


def export_manifest(snapshot: Manifest, archives: dict[str, str], version: str) -> dict:
    """manifest.json of an export: the runbook's keys, plus which tarball holds which component."""
    comps = snapshot.components
    totals = snapshot.totals()
    return {
        "timestamp": stamp(parse_iso(snapshot.time)), "version": version, "snapshot_id": snapshot.id,
        "components": sorted(comps), "size_bytes": totals["bytes_total"], "files": totals["files"],
        "facts": {n: c.facts for n, c in sorted(comps.items())},
        "kind": snapshot.kind, "reason": snapshot.reason, "host": snapshot.host,
        "archives": {archives[n]: {"component": n, "kind": comps[n].kind} for n in sorted(comps)},
    }
