"""Lifecycle rules a tier needs, the check of any rule set against what keeps restores working,
and how long a restore from each storage class takes against the RTO.

In: a TierRules (plain data: kind, prefix, lock period, archive transitions and expiry) and rules
in the S3 API's shape ({"ID", "Status", "Filter", "Transitions", "Expiration", ...}). Out: the
generated rules, Findings (ERROR: the rules would break restores, refused; WARNING: costs or a
shorter recovery window), and RestoreEstimates. No I/O (docs/ARCHIVE.md explains every rule).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable

ERROR = "error"
WARNING = "warning"
PACK_TAG = ("rag-backup-object", "pack")  # the tag archive tiers put on packs: transitions filter on it
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")  # unreadable until RestoreObject
# Classes a GET reads at once (GLACIER_IR too: instant retrieval, milliseconds).
INSTANT_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "REDUCED_REDUNDANCY", "GLACIER_IR")
# Minimum storage durations S3 charges for (days): deleting or transitioning earlier costs the rest.
MIN_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180}
ABORT_MULTIPART_DAYS = 1
H = dt.timedelta(hours=1)
# RestoreObject completion times per class and retrieval tier (AWS's published figures), before the
# download itself. Instant classes: no wait.
RESTORE_WAIT = {
    ("GLACIER", "Expedited"): (dt.timedelta(minutes=1), dt.timedelta(minutes=5)),
    ("GLACIER", "Standard"): (3 * H, 5 * H),
    ("GLACIER", "Bulk"): (5 * H, 12 * H),
    ("DEEP_ARCHIVE", "Expedited"): (12 * H, 12 * H),  # not offered: S3 serves it as Standard
    ("DEEP_ARCHIVE", "Standard"): (12 * H, 12 * H),
    ("DEEP_ARCHIVE", "Bulk"): (12 * H, 48 * H),
}


@dataclass(frozen=True)
class TierRules:
    """What the rules of one tier depend on."""

    name: str
    kind: str = "copy"  # "copy" (deduplicated) or "archive" (self-contained sets)
    prefix: str = ""
    lock_days: int = 0  # 0: not locked (and not versioned by rag-backup)
    transitions: dict[str, int] = field(default_factory=dict)  # archive tiers: class -> days
    expire_days: int = 0  # archive tiers: whole sets expire (0: never)
    retention_days: float = 0  # what the tier's own forget keeps (keep_within), for a warning


@dataclass(frozen=True)
class Finding:
    level: str  # ERROR or WARNING
    rule: str  # the rule's ID ("" for the set as a whole)
    message: str

    def to_dict(self) -> dict:
        return {"level": self.level, "rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class RestoreEstimate:
    """How long before a snapshot's objects can be read, by the slowest storage class it uses."""

    storage_class: str
    low: dt.timedelta
    high: dt.timedelta

    def slower_than(self, rto: dt.timedelta) -> bool:
        """True when even the worst case of the wait alone may exceed the RTO."""
        return self.high > rto

    def text(self) -> str:
        if self.high == dt.timedelta(0):
            return "minutes"
        lo, hi = _hours(self.low), _hours(self.high)
        return f"{lo} h" if lo == hi else f"{lo}-{hi} h"


def _hours(span: dt.timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.0f}" if hours >= 1 else f"{hours:.2f}"


def _prefix(tier: TierRules) -> str:
    p = tier.prefix.strip("/")
    return f"{p}/" if p else ""


def _rule_id(tier: TierRules, what: str) -> str:
    return f"rag-backup-{tier.name}-{what}"


def owns(tier: TierRules, rule: dict) -> bool:
    """True for rules this tier's `ragctl lifecycle apply` generated (replaced on the next apply)."""
    return str(rule.get("ID", "")).startswith(_rule_id(tier, ""))


# --------------------------------------------------------------------------- generating

def tier_rules(tier: TierRules) -> list[dict]:
    """The rules `tier` needs; transitions only on archive tiers, and only for packs."""
    base = {"Prefix": _prefix(tier)}
    rules = [{"ID": _rule_id(tier, "abort-uploads"), "Status": "Enabled", "Filter": dict(base),
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS}}]
    if tier.lock_days:
        rules.append({"ID": _rule_id(tier, "noncurrent"), "Status": "Enabled", "Filter": dict(base),
                      "NoncurrentVersionExpiration": {"NoncurrentDays": tier.lock_days + 1},
                      "Expiration": {"ExpiredObjectDeleteMarker": True}})
    if tier.kind == "archive" and tier.transitions:
        pack_filter = {"And": {"Prefix": _prefix(tier), "Tags": [{"Key": PACK_TAG[0], "Value": PACK_TAG[1]}]}}
        rules.append({"ID": _rule_id(tier, "archive-packs"), "Status": "Enabled", "Filter": pack_filter,
                      "Transitions": [{"Days": d, "StorageClass": c}
                                      for c, d in sorted(tier.transitions.items(), key=lambda cd: cd[1])]})
    if tier.kind == "archive" and tier.expire_days:
        rules.append({"ID": _rule_id(tier, "archive-expiry"), "Status": "Enabled", "Filter": dict(base),
                      "Expiration": {"Days": tier.expire_days}})
    return rules


def merged(tier: TierRules, existing: Iterable[dict], ours: Iterable[dict]) -> list[dict]:
    """The bucket's rules with this tier's generated ones replaced (other tiers' and foreign rules kept)."""
    return [r for r in existing if not owns(tier, r)] + list(ours)


# --------------------------------------------------------------------------- checking

def _filter_prefix(rule: dict) -> tuple[str, bool]:
    """(prefix the rule applies to, whether it is restricted to packs by their tag)."""
    flt = rule.get("Filter")
    if flt is None:
        return str(rule.get("Prefix", "")), False
    if "And" in flt:
        tags = {(t.get("Key"), t.get("Value")) for t in flt["And"].get("Tags", ())}
        return str(flt["And"].get("Prefix", "")), PACK_TAG in tags
    if "Tag" in flt:
        return "", (flt["Tag"].get("Key"), flt["Tag"].get("Value")) == PACK_TAG
    return str(flt.get("Prefix", "")), False


def _applies(tier: TierRules, rule: dict) -> bool:
    """An enabled rule whose prefix overlaps the tier's."""
    if rule.get("Status", "Enabled") != "Enabled":
        return False
    prefix, mine = _filter_prefix(rule), _prefix(tier)
    return prefix[0].startswith(mine) or mine.startswith(prefix[0])


def _transitions(rule: dict) -> list[tuple[str, int | None]]:
    out = list(rule.get("Transitions") or ())
    if "Transition" in rule:
        out.append(rule["Transition"])
    return [(str(t.get("StorageClass", "")), t.get("Days")) for t in out]


def _check_copy_tier(tier: TierRules, rid: str, rule: dict) -> list[Finding]:
    found = []
    for cls, days in _transitions(rule):
        if cls in ARCHIVE_CLASSES:
            found.append(Finding(ERROR, rid, (
                f"moves objects to {cls} after {days} days on tier {tier.name!r}, a deduplicated repository: "
                "packs written long ago are still used by today's snapshots, so every restore would wait "
                "hours for RestoreObject (and prune would have to restore before repacking). Use an archive "
                "tier (kind = \"archive\") for long cheap retention")))
        else:
            found.append(Finding(WARNING, rid, (
                f"moves objects to {cls} after {days} days on tier {tier.name!r}: restores stay immediate, but "
                f"prune's repacking and deletes before {MIN_DAYS.get(cls, 0)} days are charged as early deletes")))
    exp = rule.get("Expiration") or {}
    if "Days" in exp or "Date" in exp:
        when = f"after {exp['Days']} days" if "Days" in exp else f"on {exp['Date']}"
        found.append(Finding(ERROR, rid, (
            f"expires current objects {when} on tier {tier.name!r}, a deduplicated repository: a pack is as old "
            "as the first snapshot that wrote it and stays in use by every later one, so age-based expiry "
            "destroys data live snapshots need. Retention is the tier's own forget and prune")))
    return found


def _check_archive_tier(tier: TierRules, rid: str, rule: dict) -> list[Finding]:
    found = []
    _, packs_only = _filter_prefix(rule)
    trans = _transitions(rule)
    if any(c in ARCHIVE_CLASSES for c, _ in trans) and not packs_only:
        found.append(Finding(ERROR, rid, (
            f"moves every object of archive tier {tier.name!r} to an archive class, keys, index and snapshot "
            f"objects too: listing and planning a restore would wait for RestoreObject. Filter on the tag "
            f"{PACK_TAG[0]}={PACK_TAG[1]} (as `ragctl lifecycle show` generates)")))
    days = [d for _, d in trans if d is not None]
    exp = (rule.get("Expiration") or {}).get("Days")
    for (cls, d), nxt in zip(trans, [*days[1:], exp]):
        if nxt is not None and d is not None and cls in MIN_DAYS and nxt - d < MIN_DAYS[cls]:
            found.append(Finding(WARNING, rid, (
                f"objects leave {cls} {nxt - d} days after entering it; S3 charges {MIN_DAYS[cls]} days minimum "
                "there")))
    if exp is not None and tier.retention_days and exp < tier.retention_days:
        found.append(Finding(WARNING, rid, (
            f"expires archive sets after {exp} days, before the tier's retention of {tier.retention_days:g} "
            "days ends")))
    return found


def _check_noncurrent(tier: TierRules, rid: str, rule: dict) -> list[Finding]:
    found = []
    nve = rule.get("NoncurrentVersionExpiration") or {}
    if tier.lock_days and "NoncurrentDays" in nve and nve["NoncurrentDays"] <= tier.lock_days:
        found.append(Finding(WARNING, rid, (
            f"expires noncurrent versions after {nve['NoncurrentDays']} days, sooner than the tier's "
            f"{tier.lock_days}-day object lock: the versions stay until their lock lapses, but `--as-of` "
            "recovery after an attack has that much less time")))
    for t in rule.get("NoncurrentVersionTransitions") or ():
        if t.get("StorageClass") in ARCHIVE_CLASSES:
            found.append(Finding(WARNING, rid, (
                f"moves noncurrent versions to {t.get('StorageClass')}: an `--as-of` restore after an attack "
                "would wait for RestoreObject of each overwritten object")))
    return found


def check_rules(tier: TierRules, rules: Iterable[Any]) -> list[Finding]:
    """Every problem `rules` would cause on `tier` (ERROR: refused; WARNING: printed)."""
    rules = list(rules)
    bad = [r for r in rules if not isinstance(r, dict)]
    if bad:
        return [Finding(ERROR, "", f"a rule must be an object with ID, Status and Filter, got {bad[0]!r}")]
    found: list[Finding] = []
    relevant = [r for r in rules if _applies(tier, r)]
    for n, rule in enumerate(relevant):
        rid = str(rule.get("ID") or f"rule #{n + 1}")
        check = _check_archive_tier if tier.kind == "archive" else _check_copy_tier
        found += check(tier, rid, rule) + _check_noncurrent(tier, rid, rule)
    if not any("AbortIncompleteMultipartUpload" in r for r in relevant):
        found.append(Finding(WARNING, "", (
            "no rule aborts incomplete multipart uploads: parts of uploads cut short (an outage, a killed "
            "controller) are stored and charged until aborted")))
    if tier.lock_days and not any("NoncurrentVersionExpiration" in r for r in relevant):
        found.append(Finding(WARNING, "", (
            f"tier {tier.name!r} is locked but no rule expires noncurrent versions: what prune deleted is kept "
            "(and charged) forever")))
    return found


def errors_in(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == ERROR]


def parse_rules(doc: Any) -> list[Any]:
    """Rules from a lifecycle document: {"Rules": [...]} (as `aws s3api` takes) or a bare list."""
    if isinstance(doc, dict) and isinstance(doc.get("Rules"), list):
        return doc["Rules"]
    if isinstance(doc, list):
        return doc
    raise ValueError('expected {"Rules": [...]} or a list of rules')


# --------------------------------------------------------------------------- restore times

def restore_estimate(classes: Iterable[str], restore_tier: str = "Standard") -> RestoreEstimate:
    """The wait before the slowest of `classes` can be read (instant classes: none)."""
    worst = RestoreEstimate("STANDARD", dt.timedelta(0), dt.timedelta(0))
    for cls in set(classes):
        low, high = RESTORE_WAIT.get((cls, restore_tier), (dt.timedelta(0), dt.timedelta(0)))
        if high > worst.high:
            worst = RestoreEstimate(cls, low, high)
    return worst
