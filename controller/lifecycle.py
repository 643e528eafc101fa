"""`ragctl lifecycle show|apply`: the rules a tier needs, checked, and put on its bucket.

In: a LifecycleRequest (tier, apply, optional rules document) and the Controller. Out: the rules
(generated, or the operator's merged with the bucket's others), findings on them and on the
bucket's current rules; on apply, ConfigError (exit 3) and nothing applied when a rule would break
restores (policy/lifecycle.py decides); warnings are returned, and applied rules audited.
"""
from __future__ import annotations

import json

from ragbackup import errors
from ragbackup.config import TierConfig
from ragbackup.v1 import controller_pb2

from ragbackup.controller.lockkeep import versioned
from ragbackup.controller.policy import lifecycle as policy
from ragbackup.controller.policy.retention import parse_duration


def tier_rules_input(tier: TierConfig) -> policy.TierRules:
    keep = tier.retention.keep_within
    arch = tier.archive
    return policy.TierRules(
        name=tier.name, kind=tier.kind, prefix=tier.prefix,
        lock_days=tier.object_lock.days if tier.object_lock else 0,
        transitions=dict(arch.transitions) if arch else {}, expire_days=arch.expire_days if arch else 0,
        retention_days=parse_duration(keep).total_seconds() / 86400 if keep else 0)


def _operator_rules(text: str) -> list:
    try:
        return policy.parse_rules(json.loads(text))
    except ValueError as exc:
        raise errors.UsageError(f"--rules: not a lifecycle document ({exc}): expected {{\"Rules\": [...]}}") from None


def run(tier: TierConfig, req: controller_pb2.LifecycleRequest) -> controller_pb2.LifecycleReply:
    spec = tier_rules_input(tier)
    storage = versioned(tier)
    current = storage.lifecycle_rules()
    ours = _operator_rules(req.rules_json) if req.rules_json else policy.tier_rules(spec)
    rules = policy.merged(spec, current, ours) if not req.rules_json else ours
    findings = policy.check_rules(spec, rules)
    reply = controller_pb2.LifecycleReply(
        rules_json=json.dumps({"Rules": rules}, indent=1, default=str),
        findings_json=json.dumps([f.to_dict() for f in findings]),
        current_json=json.dumps({"Rules": current}, indent=1, default=str),
        current_findings_json=json.dumps([f.to_dict() for f in policy.check_rules(spec, current)]))
    bad = policy.errors_in(findings)
    if bad and req.apply:
        raise errors.ConfigError(
            f"lifecycle rules for tier {tier.name!r} would break restores, nothing applied:\n  "
            + "\n  ".join(f"{f.rule or '(rules)'}: {f.message}" for f in bad),
            details={"findings": [f.to_dict() for f in findings]})
    if req.apply:
        storage.put_lifecycle_rules(rules)
        reply.applied = True
    return reply
