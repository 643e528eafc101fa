"""The shipped systemd units: `systemd-analyze verify` clean, every timer's calendar valid and as
documented, hardening in place and the security exposure of the daemons below 2.7."""
import datetime as dt
import os
import re
import shutil
import subprocess
import sys

import pytest

UNITS = os.path.join(os.path.dirname(__file__), "..", "..", "systemd")
OPT_BIN = "/opt/rag-backup/venv/bin/"
DAEMONS = ("rag-backup-agent.service", "rag-backup-controller.service")
TIMERS = {  # timer -> (service it starts, the command that service runs)
    "rag-backup.timer": ("rag-backup.service", "ragctl backup --scheduled"),
    "rag-backup-incremental.timer": ("rag-backup.service", "ragctl backup --scheduled"),
    "rag-backup-prune.timer": ("rag-backup-prune.service", "ragctl prune --tier all"),  # every offsite tier too
    "rag-backup-drill.timer": ("rag-backup-drill.service", "ragctl drill"),
}


@pytest.fixture(scope="module")
def analyze():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing: scripts/setup.sh --test installs the systemd package")
        pytest.skip("systemd-analyze is missing (scripts/setup.sh --test installs it)")
    return tool


def _values(name: str, section: str, key: str) -> list[str]:
    """Every value of `key` in `section` (systemd keys repeat; configparser keeps only the last)."""
    out, current = [], ""
    with open(os.path.join(UNITS, name)) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                current = line.strip("[]")
            elif current == section and line.startswith(f"{key}="):
                out.append(line.split("=", 1)[1])
    return out


def _one(name: str, section: str, key: str) -> str:
    (value,) = _values(name, section, key)
    return value


def _copies(tmp_path) -> list[str]:
    """The units with ExecStart pointing at this venv's console scripts (verify checks they exist)."""
    venv_bin = os.path.dirname(sys.executable) + "/"
    out = []
    for name in sorted(os.listdir(UNITS)):
        with open(os.path.join(UNITS, name)) as f:
            text = f.read().replace(OPT_BIN, venv_bin)
        (tmp_path / name).write_text(text)
        out.append(str(tmp_path / name))
    return out


def test_every_unit_verifies_without_a_word(analyze, tmp_path):
    files = _copies(tmp_path)
    assert {os.path.basename(f) for f in files} >= {*DAEMONS, *TIMERS, "rag-backup-config.path"}
    cp = subprocess.run([analyze, "verify", "--man=no", *files], capture_output=True, text=True, cwd=tmp_path,
                        timeout=120)
    # bad values are only warnings with rc 0: any output fails
    assert (cp.returncode, cp.stdout + cp.stderr) == (0, "")


def _next_elapses(analyze, spec: str, n: int = 3) -> list[dt.datetime]:
    cp = subprocess.run([analyze, "calendar", f"--iterations={n}", spec], capture_output=True, text=True,
                        timeout=60, env={**os.environ, "TZ": "UTC", "LC_ALL": "C"})
    assert cp.returncode == 0, cp.stderr
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", cp.stdout)
    assert len(stamps) == n, cp.stdout
    return [dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S") for s in stamps]


def test_timers_fire_when_the_docs_say(analyze):
    daily = _next_elapses(analyze, _one("rag-backup.timer", "Timer", "OnCalendar"))
    assert all((t.hour, t.minute, t.second) == (2, 0, 0) for t in daily)
    assert daily[1] - daily[0] == dt.timedelta(days=1)
    incr = _next_elapses(analyze, _one("rag-backup-incremental.timer", "Timer", "OnCalendar"), 5)
    assert {t.hour for t in incr} <= {0, 6, 12, 18} and all(b - a == dt.timedelta(hours=6)
                                                             for a, b in zip(incr, incr[1:]))
    drill = _next_elapses(analyze, _one("rag-backup-drill.timer", "Timer", "OnCalendar"))
    assert all(t.weekday() == 5 and t.day <= 7 and t.hour == 3 for t in drill)  # first Saturday of each month
    assert len({(t.year, t.month) for t in drill}) == 3
    prune = _next_elapses(analyze, _one("rag-backup-prune.timer", "Timer", "OnCalendar"))
    assert all((t.hour, t.minute) == (4, 30) for t in prune)


def test_a_bad_calendar_is_refused(analyze):
    cp = subprocess.run([analyze, "calendar", "Mon..Fri 25:00"], capture_output=True, text=True, timeout=60)
    assert cp.returncode != 0


@pytest.mark.parametrize("timer", sorted(TIMERS))
def test_timers_are_persistent_and_start_the_right_command(timer):
    service, command = TIMERS[timer]
    assert _one(timer, "Timer", "Persistent") == "true"
    assert _one(timer, "Timer", "Unit") == service
    assert _one(timer, "Install", "WantedBy") == "timers.target"
    assert _one(service, "Service", "ExecStart") == OPT_BIN + command
    assert _one(service, "Service", "Environment") == "RAG_BACKUP_TRIGGER=timer"
    assert _one(service, "Service", "Type") == "oneshot"


def test_config_path_unit_runs_a_deploy_backup_recorded_as_path():
    assert _one("rag-backup-config.path", "Path", "Unit") == "rag-backup-config.service"
    watched = _values("rag-backup-config.path", "Path", "PathChanged")
    assert any(p.endswith("/.env") for p in watched) and any(p.endswith("/k8s") for p in watched)
    assert _values("rag-backup-config.path", "Path", "PathModified") == []  # every write() would fire
    svc = "rag-backup-config.service"
    assert _one(svc, "Service", "ExecStart") == OPT_BIN + "ragctl backup --components config --reason deploy"
    assert _one(svc, "Service", "Environment") == "RAG_BACKUP_TRIGGER=path"


@pytest.mark.parametrize("unit", DAEMONS)
def test_daemons_notify_watchdog_restart_and_hardening(unit):
    want = {"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "NoNewPrivileges": "yes",
            "ProtectSystem": "strict", "PrivateTmp": "yes", "LogRateLimitIntervalSec": "0", "UMask": "0027",
            "StateDirectoryMode": "0750", "SystemCallErrorNumber": "EPERM"}
    assert {k: _one(unit, "Service", k) for k in want} == want
    assert int(_one(unit, "Service", "WatchdogSec")) > 0
    assert _values(unit, "Service", "SystemCallFilter")[0] == "@system-service"
    assert _one(unit, "Service", "RestrictAddressFamilies") == "AF_UNIX AF_INET AF_INET6"
    caps = _one(unit, "Service", "CapabilityBoundingSet").split()
    assert set(caps) <= {"CAP_DAC_READ_SEARCH", "CAP_DAC_OVERRIDE", "CAP_CHOWN", "CAP_FOWNER", "CAP_FSETID"}
    assert _one(unit, "Service", "RuntimeDirectory") and _one(unit, "Service", "StateDirectory")


def test_controller_runs_as_its_own_user_without_capabilities():
    unit = "rag-backup-controller.service"
    assert (_one(unit, "Service", "User"), _one(unit, "Service", "CapabilityBoundingSet")) == ("rag-backup", "")


EXPOSURE_LIMIT = 2.7  # Debian's borgmatic unit, the peer we measure against


@pytest.mark.parametrize("unit", DAEMONS)
def test_security_exposure_below_borgmatic(analyze, tmp_path, unit):
    _copies(tmp_path)
    cp = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(tmp_path / unit)],
                        capture_output=True, text=True, timeout=120, env={**os.environ, "LC_ALL": "C"})
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", cp.stdout)
    assert m, cp.stdout + cp.stderr
    assert float(m.group(1)) < EXPOSURE_LIMIT, cp.stdout
