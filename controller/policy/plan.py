"""Pure backup and restore planning: which components, full or incremental, which parents.

In: the request, the configured components and the catalog's history (plain data).
Out: a BackupPlan or RestorePlan that run_backup / run_restore execute. No I/O.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from ragbackup import errors

FULL_INTERVAL = _dt.timedelta(hours=24)


@dataclass(frozen=True)
class ComponentPlan:
    name: str
    parent_snapshot: str  # "" when none
    parent_capture_id: str  # "" for a full read


@dataclass(frozen=True)
class BackupPlan:
    kind: str  # "full" | "incremental" | "config"
    full: bool
    components: tuple[ComponentPlan, ...]
    reason: str


@dataclass(frozen=True)
class History:
    """One past snapshot as the planner sees it."""

    id: str
    time: _dt.datetime
    kind: str
    captures: dict  # component -> capture_id


def select_components(requested: list[str], configured: list[str]) -> list[str]:
    """Requested names (all configured when empty); UsageError naming unknown ones."""
    if not configured:
        raise errors.ConfigError("no components are configured in [components]")
    if not requested:
        return list(configured)
    unknown = [c for c in requested if c not in configured]
    if unknown:
        raise errors.UsageError(f"unknown component(s): {', '.join(unknown)} "
                                f"(configured: {', '.join(configured)})")
    return list(dict.fromkeys(requested))


def decide_full(mode: str, names: list[str], history: list[History], now: _dt.datetime) -> bool:
    """Explicit mode wins; otherwise full when any component lacks a full backup in FULL_INTERVAL."""
    if mode in ("full", "incremental"):
        return mode == "full"
    for name in names:
        fulls = [h.time for h in history if h.kind == "full" and name in h.captures]
        if not fulls or now - max(fulls) >= FULL_INTERVAL:
            return True
    return False


def plan_backup(requested: list[str], configured: dict[str, str], mode: str, reason: str,
                history: list[History], now: _dt.datetime) -> BackupPlan:
    """`configured` maps component name -> kind; `history` oldest first."""
    names = select_components(requested, list(configured))
    full = decide_full(mode, names, history, now)
    comps = []
    for name in names:
        parent = next((h for h in reversed(history) if name in h.captures), None)
        comps.append(ComponentPlan(name, parent.id if parent else "",
                                   "" if full or parent is None else parent.captures[name]))
    if all(configured[n] == "config" for n in names):
        kind = "config"
    else:
        kind = "full" if full else "incremental"
    return BackupPlan(kind, full, tuple(comps), reason or ("scheduled" if mode == "auto" else "manual"))


@dataclass(frozen=True)
class RestorePlan:
    snapshot: str
    components: tuple[str, ...]
    target: str  # "" = in place
    force: bool = False
    agent: str = ""  # restore through this agent (components without a configured one)


def resolve_snapshot(ref: str, history: list[History], components: list[str]) -> str:
    """`latest` (newest holding every requested component) or an exact id; NotFound otherwise."""
    if ref != "latest":
        if any(h.id == ref for h in history):
            return ref
        raise errors.NotFound(f"no snapshot {ref!r} (see `ragctl snapshots`)")
    for h in reversed(history):
        if all(c in h.captures for c in components):
            return h.id
    want = f" with {', '.join(components)}" if components else ""
    raise errors.NotFound(f"no snapshot{want} exists yet")


def plan_restore(ref: str, requested: list[str], target: str, history: list[History],
                 kinds: dict[str, str] | None = None, force: bool = False, agent: str = "") -> RestorePlan:
    """Which snapshot and components; databases (redis, chroma) first so apps start on restored data."""
    sid = resolve_snapshot(ref, history, requested)
    available = next(h for h in history if h.id == sid).captures
    names = requested or sorted(available)
    missing = [n for n in names if n not in available]
    if missing:
        raise errors.NotFound(f"snapshot {sid} has no component(s) {', '.join(missing)}")
    names = sorted(names, key=lambda n: (_stage((kinds or {}).get(n, "")), n))
    return RestorePlan(sid, tuple(names), target, force, agent)


DATABASE_KINDS = ("redis", "chroma")


def _stage(kind: str) -> int:
    return 0 if kind in DATABASE_KINDS else 1


# What one byte of a component's tree (about 67 per chunk id, 200 per entry) costs a
# restore, in bytes of data: each chunk is looked up, read, decrypted, sent, decoded and
# checked on its own, about 40 us, the time ~4 KB of data takes. An RDB stored by record
# (280 MB in 270,000 chunks) costs as much as 1.3 GB of documents in 3,000.
TREE_BYTE_COST = 64


def restore_cost(bytes_total: int, tree_bytes: int) -> int:
    """Pure: how long a component takes to restore, in bytes-equivalent (ordering only)."""
    return bytes_total + TREE_BYTE_COST * tree_bytes


def restore_waves(plan: RestorePlan, kinds: dict[str, str], sizes: dict[str, int]) -> list[list[str]]:
    """Groups of components that may be restored concurrently, in the order the groups must run.

    In place, databases form the first group (applications start on restored data and the
    databases' checks run before files are swapped); into a target directory nothing is
    started, so every component is in one group. Within a group the costliest (`sizes`:
    restore_cost, or bytes) comes first, so the longest restore starts at once.
    """
    waves: dict[int, list[str]] = {}
    for n in plan.components:
        waves.setdefault(_stage(kinds.get(n, "")) if not plan.target else 0, []).append(n)
    return [sorted(names, key=lambda n: (-sizes.get(n, 0), n)) for _, names in sorted(waves.items())]


@dataclass(frozen=True)
class RestoreTarget:
    """One component of a restore as the decision sees it: from the config, else from the snapshot."""

    name: str
    kind: str
    agent: str  # the agent that will write it (choose_agent)
    path: str  # the data directory on the agent's host ("" when unknown)
    service: str = ""  # "docker:...", "systemd:..." or "" (none)
    container: str = ""  # data inside this container, reached with the Docker API
    files: int = 0


def restore_steps(plan: RestorePlan, comps: list[RestoreTarget], apps: tuple = ()) -> tuple[str, ...]:
    """Pure: what a restore will do, in order, or the UsageError the real run would refuse it with.

    `ragctl restore --dry-run` prints these steps; the real run calls this before it stops or
    writes anything, so the two cannot disagree. `apps` are the [recovery] app_services
    (stopped and started around an in-place restore only).
    """
    if plan.target and not plan.target.startswith("/"):
        raise errors.UsageError(f"--target {plan.target!r} is relative: give an absolute path "
                                "(ragctl resolves a relative one where it runs)")
    apps = () if plan.target else apps
    steps = [f"stop application {a.service} on agent {a.agent}" for a in apps]
    steps += [_component_step(plan, c) for c in comps]
    steps += [f"start application {a.service} on agent {a.agent}" for a in apps]
    return tuple(steps)


def _component_step(plan: RestorePlan, c: RestoreTarget) -> str:
    """The step restoring one component; UsageError when the agent would refuse it."""
    head = f"{c.name} ({c.kind}, {c.files} files, agent {c.agent})"
    if plan.target:
        return f"write {head} to {plan.target.rstrip('/')}/{c.name}"
    where = f"container {c.container}" if c.container else c.path
    if c.kind in DATABASE_KINDS:
        if not c.service:
            raise errors.UsageError(
                f"component {c.name}: an in-place {c.kind} restore must stop the database first; set "
                "`service` (\"docker:CONTAINER\" or \"systemd:UNIT\") or restore with --target")
        return (f"stop {c.service}, move {c.name}'s current data in {where} aside, place the snapshot's "
                f"{head}, start {c.service}, wait for its health check, compare with the snapshot's facts")
    if not c.container and not c.path.startswith("/"):
        raise errors.UsageError(f"component {c.name} has no absolute path to restore in place; use --target")
    return (f"write {head} beside {where}, move the current data aside as {c.name}.corrupted.<time>, "
            "put the restored one in place")
