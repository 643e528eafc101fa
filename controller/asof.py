"""A tier as it was at a time: the read-only repository `--as-of` restores and lists from.

In: the Controller, a tier name and a time (ISO 8601 with a zone). Out: the name of a repository
view, "TIER@YYYYMMDD_HHMMSS", registered with the controller's repositories and catalogs: each
key reads the newest version written at or before that time (storage/asof.py), so overwrites
and delete markers written later, by an attacker or by prune, are ignored. Used to recover after
an attack on a versioned (locked) tier; snapshots listed and restored from it as from any tier.
"""
from __future__ import annotations

import datetime as dt
import os

from ragbackup import clock, errors
from ragbackup.storage import retrying
from ragbackup.storage.asof import AsOfStorage
from ragbackup.storage.packcache import PackCache

from ragbackup.controller.catalog import Catalog
from ragbackup.controller.lockkeep import versioned
from ragbackup.controller.repositories import PRIMARY
from ragbackup.controller.state import Controller


def parse_as_of(text: str) -> dt.datetime:
    """`2026-12-02T08:00:00Z` -> aware datetime; UsageError for anything else (a zone is required)."""
    try:
        when = clock.parse_iso(text.strip())
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise errors.UsageError(f"--as-of {text!r}: expected an ISO 8601 time with a zone, "
                                "e.g. 2026-12-02T08:00:00Z")
    return when.astimezone(dt.timezone.utc)


def view(ctl: Controller, tier: str, as_of: str) -> str:
    """Register (once) and return the name of the view of `tier` as of `as_of`."""
    if tier == PRIMARY or tier not in ctl.cfg.tiers:
        raise errors.UsageError("--as-of reads object versions of an offsite tier: give --from/--tier NAME")
    if ctl.cfg.tiers[tier].kind == "archive":
        raise errors.UsageError(f"--as-of reads a copy tier's object versions; {tier!r} is an archive tier, whose "
                                "sets are never rewritten: restore the set itself")
    when = parse_as_of(as_of)
    name = f"{tier}@{clock.stamp(when)}"
    if name not in ctl.tier_catalogs:
        storage = versioned(ctl.cfg.tiers[tier])
        if not storage.versioning_enabled():
            raise errors.UsageError(f"tier {tier!r}: bucket {ctl.cfg.tiers[tier].bucket!r} keeps no object versions "
                                    "(versioning off), so there is nothing to read as of a time")
        base = os.path.join(ctl.state_dir, "asof", name)
        os.makedirs(base, mode=0o750, exist_ok=True)
        cfg = ctl.cfg.tiers[tier]
        view = PackCache(retrying(AsOfStorage(storage, when)), budget=cfg.restore_memory, ahead=cfg.read_ahead)
        ctl.repositories.add_view(name, view, os.path.join(base, "cache"))
        ctl.tier_catalogs[name] = Catalog(os.path.join(base, "catalog.sqlite"))
    return name
