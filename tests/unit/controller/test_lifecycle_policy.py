"""Lifecycle rules: what each tier gets, what is refused (the runbook's rule on a deduplicated
tier), what is warned about, and restore times against the RTO."""
import datetime as dt

import pytest

from ragbackup.controller.policy import lifecycle as lc
from ragbackup.controller.policy.lifecycle import WARNING, TierRules

RUNBOOK = {"Rules": [{"ID": "archive-old-backups", "Status": "Enabled", "Filter": {"Prefix": ""},
                      "Transitions": [{"Days": 30, "StorageClass": "GLACIER"},
                                      {"Days": 90, "StorageClass": "DEEP_ARCHIVE"}],
                      "Expiration": {"Days": 2555}}]}
COPY = TierRules("s3", prefix="prod")
LOCKED = TierRules("s3", prefix="prod", lock_days=30)
ARCHIVE = TierRules("archive", kind="archive", transitions={"GLACIER": 30, "DEEP_ARCHIVE": 90}, expire_days=2555)


def _levels(findings):
    return sorted((f.level, f.rule) for f in findings)


def test_a_copy_tier_gets_only_the_abort_rule_and_no_transition():
    rules = lc.tier_rules(COPY)
    assert [r["ID"] for r in rules] == ["rag-backup-s3-abort-uploads"]
    assert rules[0]["Filter"] == {"Prefix": "prod/"}
    assert lc.check_rules(COPY, rules) == []


def test_a_locked_tier_expires_noncurrent_versions_after_the_lock():
    rules = lc.tier_rules(LOCKED)
    [nc] = [r for r in rules if "NoncurrentVersionExpiration" in r]
    assert nc["NoncurrentVersionExpiration"] == {"NoncurrentDays": 31}
    assert not any("Transitions" in r for r in rules)
    assert lc.check_rules(LOCKED, rules) == []


def test_an_archive_tier_transitions_only_tagged_packs_and_expires_whole_sets():
    rules = lc.tier_rules(ARCHIVE)
    [tr] = [r for r in rules if "Transitions" in r]
    assert tr["Filter"]["And"]["Tags"] == [{"Key": "rag-backup-object", "Value": "pack"}]
    assert [t["StorageClass"] for t in tr["Transitions"]] == ["GLACIER", "DEEP_ARCHIVE"]
    [ex] = [r for r in rules if r.get("Expiration", {}).get("Days")]
    assert ex["Expiration"]["Days"] == 2555
    assert _levels(lc.check_rules(ARCHIVE, rules)) == [(WARNING, "rag-backup-archive-archive-packs")]  # GLACIER 60 d


def test_the_runbooks_rule_is_refused_on_a_deduplicated_tier():
    findings = lc.check_rules(COPY, lc.parse_rules(RUNBOOK))
    errs = lc.errors_in(findings)
    assert len(errs) == 3  # GLACIER, DEEP_ARCHIVE, expiry
    assert any("GLACIER after 30 days" in f.message for f in errs)
    assert any("expires current objects after 2555 days" in f.message for f in errs)
    assert any(f.level == WARNING and "multipart" in f.message for f in findings)


def test_the_runbooks_rule_on_an_archive_tier_is_refused_because_it_freezes_metadata():
    errs = lc.errors_in(lc.check_rules(ARCHIVE, lc.parse_rules(RUNBOOK)))
    assert [f.rule for f in errs] == ["archive-old-backups"] and "keys, index and snapshot" in errs[0].message


def test_rules_for_other_prefixes_or_disabled_rules_do_not_count():
    other = {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "other/"},
             "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}
    off = {**RUNBOOK["Rules"][0], "Status": "Disabled"}
    assert lc.errors_in(lc.check_rules(COPY, [other, off])) == []


def test_instant_classes_on_a_copy_tier_are_a_warning_not_an_error():
    rule = {"ID": "ia", "Status": "Enabled", "Filter": {}, "Transitions": [{"Days": 30, "StorageClass": "GLACIER_IR"}],
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
    assert _levels(lc.check_rules(COPY, [rule])) == [(WARNING, "ia")]


@pytest.mark.parametrize("rule, message", [
    ({"ID": "n", "Filter": {}, "NoncurrentVersionExpiration": {"NoncurrentDays": 7}}, "sooner than the tier's 30-day"),
    ({"ID": "n", "Filter": {}, "NoncurrentVersionTransitions": [{"NoncurrentDays": 1, "StorageClass": "GLACIER"}]},
     "noncurrent versions to GLACIER"),
])
def test_noncurrent_rules_that_shorten_as_of_recovery_are_warned_about(rule, message):
    assert any(f.level == WARNING and message in f.message for f in lc.check_rules(LOCKED, [rule]))


def test_a_rule_that_is_not_an_object_is_an_error_and_bad_documents_raise():
    assert lc.errors_in(lc.check_rules(COPY, ["transition everything"]))
    with pytest.raises(ValueError):
        lc.parse_rules({"rules": []})


def test_apply_replaces_only_this_tiers_rules():
    foreign = {"ID": "keep-me", "Status": "Enabled", "Filter": {"Prefix": "x/"}, "Expiration": {"Days": 3}}
    stale = {"ID": "rag-backup-s3-old", "Status": "Enabled", "Filter": {}}
    out = lc.merged(COPY, [foreign, stale], lc.tier_rules(COPY))
    assert [r["ID"] for r in out] == ["keep-me", "rag-backup-s3-abort-uploads"]


def test_restore_estimates_against_the_rto():
    rto = dt.timedelta(hours=1)
    assert lc.restore_estimate(["STANDARD", "STANDARD_IA"]).text() == "minutes"
    glacier = lc.restore_estimate(["STANDARD", "GLACIER"])
    assert (glacier.storage_class, glacier.text(), glacier.slower_than(rto)) == ("GLACIER", "3-5 h", True)
    deep = lc.restore_estimate(["GLACIER", "DEEP_ARCHIVE"], "Bulk")
    assert (deep.storage_class, deep.text()) == ("DEEP_ARCHIVE", "12-48 h")
    assert not lc.restore_estimate(["GLACIER"], "Expedited").slower_than(rto)
