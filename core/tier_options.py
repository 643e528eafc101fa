"""A tier's optional tables, typed and validated: [tiers.NAME.object_lock] and [tiers.NAME.archive].

In: the TOML tables as dicts and where they were read (for messages). Out: frozen ObjectLockConfig
and ArchiveConfig; ConfigError naming the key and what was expected. core/config.py attaches them
to TierConfig; the storage stack, maintenance and lifecycle rules read them.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ragbackup.errors import ConfigError
from ragbackup.schedule import parse_span, span_text

TIER_KINDS = ("copy", "archive")
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
RESTORE_TIERS = ("Expedited", "Standard", "Bulk")
TRANSITION_CLASSES = ("STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class ObjectLockConfig:
    """Every object version is written with retain-until = now + days; maintenance runs every
    `maintain_every` and extends each live object whose retention has less than `extend_within` left.

    Invariant (validated): maintain_every < extend_within < days, so an object extended at one run
    still has more than extend_within - maintain_every > 0 left at the next; none lapses while live.
    """

    days: int
    mode: str = "COMPLIANCE"
    maintain_every: dt.timedelta = DAY
    extend_within: dt.timedelta = dt.timedelta(days=7)

    @property
    def period(self) -> dt.timedelta:
        return dt.timedelta(days=self.days)


@dataclass(frozen=True)
class ArchiveConfig:
    """kind = "archive": self-contained sets (one snapshot and every pack it needs, no sharing between
    sets), one per `every` period; lifecycle transitions their packs (`transitions`: class -> days
    after the write) and expires whole sets after `expire_days` (0: never). Restores from an archive
    class ask S3 for a temporary copy (RestoreObject, `restore_tier`, kept `restore_days`) and wait
    for it up to `restore_wait`.
    """

    every: str = "month"
    transitions: dict[str, int] = field(default_factory=lambda: {"GLACIER": 30, "DEEP_ARCHIVE": 90})
    expire_days: int = 2555
    restore_wait: dt.timedelta = dt.timedelta(hours=48)
    restore_poll: dt.timedelta = dt.timedelta(minutes=1)
    restore_tier: str = "Standard"
    restore_days: int = 7


def _fail(where: str, key: str, expected: str) -> ConfigError:
    return ConfigError(f"{where} {key}: expected {expected}")


def _unknown(where: str, data: dict, allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ConfigError(f"{where} unknown key(s): {', '.join(extra)} (allowed: {', '.join(sorted(allowed))})")


def _int(where: str, data: dict, key: str, default: int, low: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(where, key, f"a whole number >= {low}")
    return value


def _span(where: str, data: dict, key: str, default: dt.timedelta) -> dt.timedelta:
    if key not in data:
        return default
    text = data[key]
    span = parse_span(text) if isinstance(text, str) else None
    if span is None or span <= dt.timedelta(0):
        raise _fail(where, key, f'a time span like "6h" or "1d", got {text!r}')
    return span


def _choice(where: str, data: dict, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise _fail(where, key, f"one of {', '.join(choices)}, got {value!r}")
    return value


def parse_object_lock(where: str, data: Any) -> ObjectLockConfig:
    """[tiers.NAME.object_lock]: days (required), mode, maintain_every, extend_within."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    _unknown(where, data, {"days", "mode", "maintain_every", "extend_within"})
    if "days" not in data:
        raise ConfigError(f"{where} days: required key is missing")
    days = _int(where, data, "days", 0, 1)
    period = dt.timedelta(days=days)
    every = _span(where, data, "maintain_every", min(DAY, period / 4))
    within = _span(where, data, "extend_within", min(dt.timedelta(days=7), period / 2))
    cfg = ObjectLockConfig(days=days, mode=_choice(where, data, "mode", "COMPLIANCE", LOCK_MODES),
                           maintain_every=every, extend_within=within)
    if not every < within < period:
        raise ConfigError(
            f"{where}: expected maintain_every < extend_within < days, got {span_text(every)} < "
            f"{span_text(within)} < {days}d: retention is extended when less than extend_within is left, "
            "and maintenance must run again before that much has passed, or live objects lose their lock")
    return cfg


def parse_kind(where: str, data: Any) -> str:
    if data not in TIER_KINDS:
        raise _fail(where, "kind", f"one of {', '.join(TIER_KINDS)}, got {data!r}")
    return data


def _transitions(where: str, data: dict) -> dict[str, int]:
    value = data.get("transitions", ArchiveConfig().transitions)
    if not isinstance(value, dict) or not all(
            k in TRANSITION_CLASSES and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in value.items()):
        raise _fail(where, "transitions", "a table of STORAGE_CLASS = days (e.g. { GLACIER = 30, DEEP_ARCHIVE = 90 }) "
                    f"with classes among {', '.join(TRANSITION_CLASSES)}")
    return dict(value)


def parse_archive(where: str, data: Any) -> ArchiveConfig:
    """[tiers.NAME.archive]: every, transitions, expire_days, restore_wait, restore_poll, restore_tier, restore_days."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    _unknown(where, data, {"every", "transitions", "expire_days", "restore_wait", "restore_poll", "restore_tier",
                           "restore_days"})
    d = ArchiveConfig()
    cfg = ArchiveConfig(
        every=_choice(where, data, "every", d.every, ("month", "week", "day")),
        transitions=_transitions(where, data), expire_days=_int(where, data, "expire_days", d.expire_days, 0),
        restore_wait=_span(where, data, "restore_wait", d.restore_wait),
        restore_poll=_span(where, data, "restore_poll", d.restore_poll),
        restore_tier=_choice(where, data, "restore_tier", d.restore_tier, RESTORE_TIERS),
        restore_days=_int(where, data, "restore_days", d.restore_days, 1))
    last = max(cfg.transitions.values(), default=0)
    if cfg.expire_days and cfg.expire_days <= last:
        raise _fail(where, "expire_days", f"more days than the last transition ({last}), or 0 for never")
    return cfg
