"""The runbook's tarball layout, shared by export and import (pure).

In: component names and kinds, inner tarball names. Out: each component's tarball name on
export, the component each tarball becomes on import, and the manifest.json beside them.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from ragbackup import errors
from ragbackup.clock import parse_iso, stamp
from ragbackup.config import COMPONENT_KINDS
from ragbackup.repo.manifest import Manifest

MANIFEST = "manifest.json"
ENV_BACKUP = ".env.backup"  # the runbook's copy of the deployment's .env, beside the tarballs
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


def map_archive(stem: str, configured: dict[str, str], hint: tuple[str, str] | None = None,
                chosen: str | None = None) -> Target:
    """Which component an inner tarball becomes.

    `configured` maps the controller's component names to kinds; `hint` is (name, kind) from
    an export's manifest.json; `chosen` is the operator's `--map STEM=NAME`. Order: the chosen
    name, the hinted name, a component named like the tarball, the one configured component
    of the tarball's kind (chromadb, redis, config; state -> processing or state), else a new
    component named after the tarball. Several configured components of the tarball's kind
    and no choice: UsageError naming them.
    """
    if chosen:
        return _chosen(stem, configured, chosen)
    name, kind = hint if hint else (stem, "")
    if name in configured:
        return Target(name, configured[name], True)
    if hint:
        return Target(name, kind, False)
    kind = _STEM_KINDS.get(stem, "")
    same_kind = sorted(n for n, k in configured.items() if k == kind)
    if kind and len(same_kind) == 1:
        return Target(same_kind[0], kind, True)
    if kind and same_kind:
        raise errors.UsageError(f"{stem} could become any of the {kind} components {', '.join(same_kind)}; "
                                f"choose one with --map {stem}={same_kind[0]}")
    if stem == "state":
        for n in STATE_NAMES:
            if configured.get(n) == "paths":
                return Target(n, "paths", True)
    return Target(stem, kind or "paths", False)


def _chosen(stem: str, configured: dict[str, str], name: str) -> Target:
    """The operator's choice; a configured component of another database kind is refused."""
    kind = _STEM_KINDS.get(stem, "")
    if name not in configured:
        return Target(name, kind or "paths", False)
    if kind and configured[name] != kind:
        raise errors.UsageError(f"--map {stem}={name}: {stem} holds {kind} data, component {name} is of kind "
                                f"{configured[name]}")
    return Target(name, configured[name], True)


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


_STAMP_RE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})[_T -]?(\d{2}):?(\d{2}):?(\d{2})")


def parse_timestamp(value: object) -> datetime.datetime | None:
    """A runbook timestamp as a UTC datetime, None when it is not one.

    Accepts `YYYYMMDD_HHMMSS` (the runbook's `date +%Y%m%d_%H%M%S`, always UTC here),
    ISO 8601 with or without an offset (none means UTC), and Unix seconds.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        when = parse_iso(text)
    except ValueError:
        m = _STAMP_RE.fullmatch(text)
        if not m:
            return None
        try:
            when = datetime.datetime(*(int(g) for g in m.groups()))
        except ValueError:
            return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def snapshot_time(manifest: dict | None, filename: str,
                  now: datetime.datetime) -> tuple[datetime.datetime, str]:
    """When an imported backup was taken, and where that came from.

    manifest.json's `timestamp`, else the `YYYYMMDD_HHMMSS` in the tarball's name, else `now`;
    the second value is "manifest.json", "filename" or "import" accordingly.
    """
    said = parse_timestamp((manifest or {}).get("timestamp"))
    if said is not None:
        return said, MANIFEST
    m = _STAMP_RE.search(filename)
    named = parse_timestamp(m.group(0)) if m else None
    if named is not None:
        return named, "filename"
    return now, "import"
