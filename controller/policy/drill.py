"""Pure decisions of a restore drill: the RTO it is held to, its verdict and the line that records it.

In: the controller config (its optional `[objectives] rto`), the checks the agents ran, the
drill's duration and the recovery point's time. Out: the RTO in seconds, a DrillVerdict
(SUCCESSFUL, FAILED or TIMED_OUT, what failed, the achieved RPO) and its summary line and
details for the job record. No I/O.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

from ragbackup import errors

SUCCESSFUL = "SUCCESSFUL"
FAILED = "FAILED"
TIMED_OUT = "TIMED_OUT"
DEFAULT_RTO_S = 3600.0
SOURCES = ("local",)  # besides the offsite tiers the controller config declares
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object, what: str = "[objectives] rto") -> float:
    """Seconds from a number of seconds, a timedelta or a text like "90s", "30m", "1h30m"; else UsageError."""
    if isinstance(value, _dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    text = str(value).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", text)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smhd])", "", text).strip():
        raise errors.UsageError(f"{what}: expected a duration such as 3600, \"90s\", \"30m\" or \"1h\", "
                                f"got {value!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def rto_seconds(cfg: object) -> float:
    """The recovery time objective: `[objectives] rto` of the controller config, else 1 h."""
    objectives = getattr(cfg, "objectives", None)
    if objectives is None:
        return DEFAULT_RTO_S
    for name in ("rto_s", "rto_seconds", "rto"):
        value = objectives.get(name) if isinstance(objectives, dict) else getattr(objectives, name, None)
        if value:
            return parse_duration(value)
    return DEFAULT_RTO_S


def check_source(source: str, tiers: tuple[str, ...] = ()) -> str:
    """The repository a drill reads from: "local" (the primary) or one of the configured offsite `tiers`."""
    source = source or "local"
    if source not in SOURCES and source not in tiers:
        raise errors.UsageError(f"drill --from {source}: expected {' or '.join([*SOURCES, *tiers])} "
                                "(offsite tiers are declared as [tiers.NAME] in the controller config)")
    return source


@dataclass(frozen=True)
class Check:
    """One check an agent ran for one component."""

    component: str
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class DrillVerdict:
    result: str
    duration_s: float
    rto_s: float
    rpo_s: float
    failed: tuple[Check, ...] = ()
    checks: tuple[Check, ...] = field(default=())


def judge(checks: list[Check], duration_s: float, rto_s: float, deadline_hit: bool = False) -> str:
    """FAILED when any check failed; else TIMED_OUT past the RTO (or when it was cut off); else SUCCESSFUL."""
    if any(not c.ok for c in checks):
        return FAILED
    if deadline_hit or duration_s > rto_s:
        return TIMED_OUT
    return SUCCESSFUL


def recovery_point_age(snapshot_time: str, now: _dt.datetime) -> float:
    """Seconds between the snapshot's time (ISO-8601 UTC) and `now`: the RPO this recovery achieves."""
    when = _dt.datetime.fromisoformat(snapshot_time.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return max(0.0, (now - when).total_seconds())


def verdict(checks: list[Check], duration_s: float, rto_s: float, rpo_s: float,
            deadline_hit: bool = False) -> DrillVerdict:
    result = judge(checks, duration_s, rto_s, deadline_hit)
    return DrillVerdict(result, duration_s, rto_s, rpo_s, tuple(c for c in checks if not c.ok), tuple(checks))


def _human(seconds: float) -> str:
    s = int(round(seconds))
    if s < 120:
        return f"{seconds:.1f}s"
    h, rem = divmod(s, 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{s // 60}m{s % 60:02d}s"


def summary(v: DrillVerdict, snapshot: str) -> str:
    """The job record's one line: verdict, duration against the RTO, achieved RPO, what failed."""
    line = (f"drill {v.result}: snapshot {snapshot} restored and checked in {_human(v.duration_s)} "
            f"(RTO {_human(v.rto_s)}); recovery point age (RPO) {_human(v.rpo_s)}; "
            f"{len(v.checks) - len(v.failed)}/{len(v.checks)} checks passed")
    if v.failed:
        line += "; failed: " + "; ".join(f"{c.component} {c.name}: {c.detail}" for c in v.failed)
    elif v.result == TIMED_OUT:
        line += "; slower than the RTO"
    return line


def details(v: DrillVerdict, snapshot: str, snapshot_time: str, agents: dict[str, str],
            seconds: dict[str, float] | None = None) -> dict:
    """The job result's details: everything the drill measured, per component (agent, seconds, checks)."""
    per: dict[str, dict] = {}
    for c in v.checks:
        entry = per.setdefault(c.component, {"agent": agents.get(c.component, ""),
                                             "seconds": round((seconds or {}).get(c.component, 0.0), 3),
                                             "checks": []})
        entry["checks"].append({"name": c.name, "ok": c.ok, "detail": c.detail})
    return {"result": v.result, "snapshot": snapshot, "snapshot_time": snapshot_time,
            "duration_s": round(v.duration_s, 3), "rto_s": v.rto_s, "rpo_s": round(v.rpo_s, 3),
            "within_rto": v.duration_s <= v.rto_s,
            "failed": [f"{c.component}/{c.name}: {c.detail}" for c in v.failed], "components": per}
