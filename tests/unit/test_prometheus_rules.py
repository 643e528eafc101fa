"""The shipped Prometheus rules: promtool checks them and runs their unit tests; every rule is
tested, and the rule names match the controller's own alert policy."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from ragbackup.controller.policy.alerts import ALERT_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = os.path.join(ROOT, "packaging", "prometheus")
RULES = os.path.join(DIR, "rag-backup.rules.yml")
TESTS = os.path.join(DIR, "rag-backup.rules.test.yml")
PROMETHEUS_ONLY = {"RagBackupNeverBackedUp", "RagBackupMetricsAbsent"}  # the controller folds these into TooOld
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (scripts/setup.sh --test installs prometheus)")


def _load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def rule_names() -> list[str]:
    return [r["alert"] for g in _load(RULES)["groups"] for r in g["rules"]]


@needs_promtool
def test_promtool_check_and_unit_tests_pass():
    cp = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    cp = subprocess.run(["promtool", "test", "rules", os.path.basename(TESTS)], cwd=DIR, capture_output=True,
                        text=True, timeout=120)
    assert cp.returncode == 0 and "SUCCESS" in cp.stdout, cp.stdout + cp.stderr


@needs_promtool
def test_promtool_fails_a_wrong_expectation(tmp_path):
    """The harness can fail: a test expecting the job-failure alert to stay quiet does not pass."""
    shutil.copy(RULES, tmp_path)
    text = open(TESTS, encoding="utf-8").read().replace("      - eval_time: 5m\n        alertname: RagBackupJobFailed",
                                                       "      - eval_time: 1m\n        alertname: RagBackupJobFailed", 1)
    (tmp_path / "t.yml").write_text(text)
    cp = subprocess.run(["promtool", "test", "rules", "t.yml"], cwd=tmp_path, capture_output=True, text=True,
                        timeout=120)
    assert cp.returncode != 0


def test_every_rule_has_firing_and_quiet_tests():
    tested = {}
    for t in _load(TESTS)["tests"]:
        for case in t.get("alert_rule_test", []):
            tested.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    for name in rule_names():
        assert tested.get(name) == {True, False}, f"{name}: needs a firing and a quiet test case"


def test_rules_match_the_controller_policy():
    assert set(rule_names()) - PROMETHEUS_ONLY == set(ALERT_NAMES)
