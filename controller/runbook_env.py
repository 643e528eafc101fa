"""The runbook's .env.backup becomes the config component's `.env` (mode 0600).

In: the scan's .env.backup, the inner tarballs and the components they became, the configured
components and the operator's `--map .env.backup=NAME`. Out: the member row for `.env` in that
component's tree (its data is stored with the files), or why it was skipped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ragbackup import errors
from ragbackup.repo.tree import FILE

from ragbackup.controller.runbook_entries import Member, MemberTable, key_of
from ragbackup.controller.runbook_layout import ENV_BACKUP, Target
from ragbackup.controller.runbook_scan import Archive, EnvBackup, Scan

ENV_NAME = b".env"
ENV_MODE = 0o600
_CONFIG_KINDS = ("config", "paths")  # a chosen component must hold plain files


@dataclass(frozen=True)
class EnvPlan:
    """Where .env.backup goes: an inner tarball's tree (`arc`), or a new tree for `target`."""

    arc: int | None
    target: Target


def plan_env(archives: list[Archive], targets: dict[int, Target], configured: dict[str, str],
             chosen: str | None) -> EnvPlan | str:
    """The component that gets `.env`, or why none does (pure).

    Order: the component chosen with --map; the component a config tarball became; the one
    configured component of kind config. Several and no choice: UsageError naming them.
    """
    by_name = {targets[a.index].name: a.index for a in archives}
    if chosen:
        return _chosen(chosen, by_name, targets, configured)
    from_tarball = [i for i in by_name.values() if targets[i].kind == "config"]
    if len(from_tarball) == 1:
        return EnvPlan(from_tarball[0], targets[from_tarball[0]])
    candidates = sorted(n for n, k in configured.items() if k == "config")
    if len(from_tarball) > 1 or len(candidates) > 1:
        names = sorted(targets[i].name for i in from_tarball) or candidates
        raise errors.UsageError(f"{ENV_BACKUP} could go to any of the config components {', '.join(names)}; "
                                f"choose one with --map {ENV_BACKUP}={names[0]}")
    if candidates:
        return EnvPlan(by_name.get(candidates[0]), Target(candidates[0], "config", True))
    return "no config component: none is configured and the tarball holds no config.tar.gz"


def _chosen(name: str, by_name: dict[str, int], targets: dict[int, Target],
            configured: dict[str, str]) -> EnvPlan:
    if name in by_name:
        target = targets[by_name[name]]
    else:
        target = Target(name, configured.get(name, "config"), name in configured)
    if target.kind not in _CONFIG_KINDS:
        raise errors.UsageError(f"--map {ENV_BACKUP}={name}: component {name} is of kind {target.kind}, "
                                "which holds no .env")
    return EnvPlan(by_name.get(name), target)


def place_env(env: EnvBackup, plan: EnvPlan, s: Scan, table: MemberTable) -> tuple[Archive, bytes] | str:
    """Record `.env` in the planned tree: (its archive, its path), or why it was skipped.

    A tree without an inner tarball gets an archive of its own, after the real ones (pass 2
    never reaches it). A tarball that already holds `.env` keeps its own.
    """
    if plan.arc is None:
        arc = Archive(len(s.archives), env.member, plan.target.name)
        s.archives.append(arc)
    else:
        arc = s.archives[plan.arc]
    path = arc.root + b"/" + ENV_NAME if arc.root else ENV_NAME
    if table.get(arc.index, path) is not None:
        return f"{os.path.basename(arc.member)} already holds .env (kept that one)"
    table.add(arc.index, Member(key=key_of(path), type=FILE, mode=ENV_MODE, uid=env.uid, gid=env.gid,
                                mtime=env.mtime, size=len(env.data), member=env.member), env.member)
    table.commit()
    return arc, path
