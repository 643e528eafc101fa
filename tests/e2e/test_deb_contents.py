"""The built .deb itself: its control data, what it ships, and lintian.

In: the .deb `packaging/deb/build.sh` builds (the deb_package fixture). Out: assertions on
`dpkg-deb --info/--contents` and on lintian's report (every remaining tag is overridden and
explained in docs/PACKAGING.md).
"""
import os
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True).stdout


def test_control_data_and_contents(deb_package):
    assert _dpkg_deb("-f", deb_package, "Package").strip() == "rag-backup"
    assert "python3 (>= 3.11)" in _dpkg_deb("-f", deb_package, "Depends")
    conffiles = subprocess.run(f"dpkg-deb --ctrl-tarfile {deb_package} | tar -xO ./conffiles", shell=True,
                               capture_output=True, text=True, check=True).stdout.split()
    assert conffiles == ["/etc/rag-backup/agent.toml.example", "/etc/rag-backup/controller.toml.example"]
    names = [line.split()[5] for line in _dpkg_deb("--contents", deb_package).splitlines()]
    for path in ("./usr/bin/ragctl", "./usr/bin/rag-backup-agent", "./usr/bin/rag-backup-controller",
                 "./lib/systemd/system/rag-backup-controller.service", "./lib/systemd/system/rag-backup.timer",
                 "./opt/rag-backup/venv/bin/python3", "./usr/share/doc/rag-backup/copyright"):
        assert path in names, path
    assert not [n for n in names if "__pycache__" in n or n.endswith("/bin/pip")]
    assert not [n for n in names if n.startswith("./tmp") or "rag-deb." in n]  # nothing of the build's staging dir


def test_lintian_reports_nothing_unexplained(deb_package):
    if shutil.which("lintian") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("lintian is not installed (scripts/setup.sh --test installs it)")
        pytest.skip("lintian is not installed")
    cp = subprocess.run(["lintian", "--info", deb_package], capture_output=True, text=True, timeout=800)
    tags = [line for line in cp.stdout.splitlines() if line[:2] in ("E:", "W:", "I:")]
    assert tags == [] and cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-2000:]
