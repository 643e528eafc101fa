"""`ragctl config check` against a real agent and controller's configs, and `ragctl config paths-unit`."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from ragbackup import pki
from ragbackup.localstack import LocalStack


def _check(st: LocalStack, *extra: str) -> tuple[int, dict]:
    cp = subprocess.run([sys.executable, "-m", "ragbackup.cli.main", "--config", st.controller_config, "config",
                         "check", "--agent", st.agent_config, "--json", *extra], capture_output=True, text=True,
                        timeout=120)
    assert cp.stderr == "" or cp.returncode in (0, 3), cp.stderr
    return cp.returncode, json.loads(cp.stdout)


def _levels(report: dict, check: str) -> list[str]:
    return [f["level"] for f in report["findings"] if f["check"] == check]


def _detail(report: dict, check: str) -> str:
    return " | ".join(f["detail"] for f in report["findings"] if f["check"] == check)


@pytest.fixture
def stack(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    st = LocalStack(str(tmp_path / "stack"))
    st.add_paths_component("documents", str(docs))
    st.controller_extra = '[schedule]\nincremental_every = "4h"\n'
    with st:
        st.ragctl("init")
        yield st


def test_a_good_config_passes_with_every_finding_named(stack):
    rc, report = _check(stack)
    assert rc == 0 and report["ok"], report
    checks = {f["check"] for f in report["findings"]}
    assert {"controller config", "state_dir", "repository path", "repository password_file",
            "controller certificate", "controller tls key", "schedule vs RPO", "agent local", "agent config",
            "agent certificate", "agent tls key"} <= checks
    assert _levels(report, "agent local") == ["ok"] and "answers" in _detail(report, "agent local")
    assert "issued by the CA" in _detail(report, "agent certificate") and "127.0.0.1" in _detail(
        report, "agent certificate")
    secret = open(stack.passphrase_file).read()
    assert secret not in json.dumps(report)


def test_each_problem_is_named_and_exits_3(stack, tmp_path):
    os.chmod(stack.passphrase_file, 0o644)
    stack.stop_process("agent")
    other = tmp_path / "other-ca"
    other.mkdir()
    pki.create_ca(str(other))
    cert, _ = pki.issue(str(other), "controller", ["127.0.0.1"])
    shutil.copy(cert, os.path.join(stack.pki_dir, "controller.pem"))  # a certificate from another CA
    rc, report = _check(stack)
    assert rc == 3 and not report["ok"]
    assert _levels(report, "repository password_file") == ["error"]
    assert "others may read it" in _detail(report, "repository password_file")
    assert _levels(report, "agent local") == ["error"] and "unreachable" in _detail(report, "agent local")
    assert _levels(report, "controller certificate") == ["error"]
    assert "is not issued by the CA" in _detail(report, "controller certificate")
    assert _levels(report, "agent certificate") == ["ok"]


def test_schedule_that_misses_the_rpo_warns_and_fails_with_strict(stack):
    with open(stack.controller_config, "a") as f:
        f.write('\n[objectives]\nrpo = "1h"\n')
    rc, report = _check(stack, "--no-agents")
    assert rc == 0 and _levels(report, "schedule vs RPO") == ["warn"]
    assert "cannot meet the RPO of 1h: backups every 4h" in _detail(report, "schedule vs RPO")
    assert not any(f["check"].startswith("agent local") for f in report["findings"])
    rc, _ = _check(stack, "--no-agents", "--strict")
    assert rc == 3


def test_a_config_that_does_not_load_is_named(stack):
    with open(stack.controller_config, "a") as f:
        f.write('\n[schedule]\nincremental_every = "often"\n')  # a second [schedule] table: invalid TOML
    rc, report = _check(stack, "--no-agents")
    assert rc == 3 and _levels(report, "controller config") == ["error"]
    text = open(stack.controller_config).read().replace('[schedule]\nincremental_every = "often"\n', "")
    with open(stack.controller_config, "w") as f:
        f.write(text.replace('incremental_every = "4h"', 'incremental_every = "often"'))
    rc, report = _check(stack, "--no-agents")
    assert rc == 3
    assert "[schedule] incremental_every: expected a time span" in _detail(report, "controller config")
    # the human table names the file and key too
    cp = subprocess.run([sys.executable, "-m", "ragbackup.cli.main", "--config", stack.controller_config, "config",
                         "check", "--no-agents"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 3 and "ERROR" in cp.stdout and "incremental_every" in cp.stdout


def test_paths_unit_watches_every_directory_of_the_config_component(tmp_path):
    deploy = tmp_path / "deploy"
    (deploy / "k8s" / "base").mkdir(parents=True)
    (deploy / "monitoring").mkdir()
    (deploy / ".env").write_text("TOKEN=x\n")
    st = LocalStack(str(tmp_path / "stack"))
    st.add_component("config", "config", str(deploy))
    st.write_configs()
    cp = subprocess.run([sys.executable, "-m", "ragbackup.cli.main", "--config", st.controller_config, "config",
                         "paths-unit"], capture_output=True, text=True, timeout=60, check=True)
    lines = cp.stdout.splitlines()
    assert lines[1:3] == ["[Path]", "PathChanged="]
    assert [ln.split("=", 1)[1] for ln in lines[3:]] == [str(deploy), str(deploy / "k8s"),
                                                         str(deploy / "k8s" / "base"), str(deploy / "monitoring")]
    if shutil.which("systemd-analyze"):  # the shipped unit with the drop-in merged in verifies clean
        unit = tmp_path / "rag-backup-config.path"
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "systemd", "rag-backup-config.path")) as f:
            unit.write_text(f.read() + "\n" + cp.stdout)
        svc = tmp_path / "rag-backup-config.service"
        svc.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
        v = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit), str(svc)], capture_output=True,
                           text=True, cwd=tmp_path, timeout=60)
        assert (v.returncode, v.stdout + v.stderr) == (0, "")
    st.add_component("other", "paths", str(tmp_path))
    st.components = [c for c in st.components if c.kind != "config"]
    st.write_configs()
    cp = subprocess.run([sys.executable, "-m", "ragbackup.cli.main", "--config", st.controller_config, "config",
                         "paths-unit"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 3 and 'no component of kind "config"' in cp.stderr
