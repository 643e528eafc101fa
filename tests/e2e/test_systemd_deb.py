"""The .deb under systemd as PID 1: install, Type=notify, timers, a timer's backup, the audit trail in
journald (caller uids from the kernel), a refused user, the watchdog, a stop mid-backup, purge.

In: the .deb `packaging/deb/build.sh` builds from this checkout and a booted systemd container
(tests/fixtures/systemd_image.py). Out: assertions on systemctl and `journalctl -o json`.
The tests run in file order on one container; each step needs the ones before it.
"""
import json

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]  # the first builds the image and the .deb

CONTROLLER = "rag-backup-controller.service"
AGENT = "rag-backup-agent.service"
CONTROLLER_TOML = """[controller]
socket = "/run/rag-backup/controller.sock"
socket_group = "rag-backup"
state_dir = "/var/lib/rag-backup"

[repository]
type = "local"
path = "/var/backups/rag-backup/repository"
password_file = "/etc/rag-backup/repository.pass"

[agents.local]
address = "unix:/run/rag-backup-agent/agent.sock"

[components.documents]
kind = "paths"
agent = "local"
path = "/srv/rag/documents"

[components.config]
kind = "config"
agent = "local"
path = "/srv/rag/deploy"

# The test starts the timers' service by hand, minutes apart: every firing is due.
[schedule]
incremental_every = "1m"
min_gap = "0s"
"""
AGENT_TOML = """[agent]
listen = "unix:/run/rag-backup-agent/agent.sock"
cache_dir = "/var/cache/rag-backup-agent"
staging_dir = "/var/lib/rag-backup-agent/staging"
allowed_paths = ["/srv/rag"]
"""
# CI only: a shorter watchdog than the shipped unit's, so a hung controller is killed within seconds.
# The controller pings every 5 s today; keep WatchdogSec above that.
WATCHDOG_DROPIN = "[Service]\nWatchdogSec=12\nRestartSec=1\n"


def _journal(box, *args: str) -> list[dict]:
    out = box.run("journalctl", "--no-pager", "-o", "json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _audit(box, ident: str, **match: str) -> list[dict]:
    return [e for e in _journal(box, "-t", ident) if "RAG_EVENT" in e
            and all(e.get(k) == v for k, v in match.items())]


def _snapshots(box) -> list[str]:
    return [s["id"] for s in json.loads(box.run("ragctl", "snapshots", "--json").stdout)]


@pytest.fixture(scope="module")
def box(systemd_container, deb_package):
    b = systemd_container
    b.copy_in(deb_package, "/root/rag-backup.deb")
    b.sh("mkdir -p /etc/rag-backup /srv/rag/documents /srv/rag/deploy && echo hello >/srv/rag/documents/a.txt"
         " && echo API_KEY=secret >/srv/rag/deploy/.env"
         " && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \\n' >/etc/rag-backup/repository.pass"
         " && chmod 0600 /etc/rag-backup/repository.pass")
    b.sh(f"cat >/etc/rag-backup/controller.toml <<'EOF'\n{CONTROLLER_TOML}EOF\n"
         f"cat >/etc/rag-backup/agent.toml <<'EOF'\n{AGENT_TOML}EOF\n"
         f"mkdir -p /etc/systemd/system/{CONTROLLER}.d && "
         f"printf '{WATCHDOG_DROPIN}' >/etc/systemd/system/{CONTROLLER}.d/ci-watchdog.conf")
    return b


def test_install_starts_the_daemons_through_type_notify(box):
    box.run("apt-get", "install", "-y", "/root/rag-backup.deb", timeout=300)  # --network none: nothing to fetch
    for unit in (CONTROLLER, AGENT):
        try:
            box.wait(f"systemctl is-active --quiet {unit}", 60, f"{unit} active")
        except AssertionError as exc:  # say why: the unit's own journal
            raise AssertionError(f"{exc}\n{box.run('journalctl', '--no-pager', '-n', '60', '-u', unit).stdout}") from None
        props = dict(line.split("=", 1) for line in box.run(
            "systemctl", "show", "-p", "Type,ActiveState,SubState,StatusText", unit).stdout.splitlines())
        assert props["Type"] == "notify" and props["ActiveState"] == "active", props
    assert "serving on /run/rag-backup/controller.sock" in box.run(
        "systemctl", "show", "-p", "StatusText", "--value", CONTROLLER).stdout
    assert box.run("id", "-nG", "rag-backup").stdout.split() == ["rag-backup"]
    modes = box.run("stat", "-c", "%n %a %U:%G", "/var/lib/rag-backup", "/var/backups/rag-backup",
                    "/run/rag-backup/controller.sock", "/run/rag-backup/.grpc").stdout.split("\n")
    # the controller runs as rag-backup: its state, backup volume and sockets are its own
    assert modes[:4] == ["/var/lib/rag-backup 750 rag-backup:rag-backup",
                         "/var/backups/rag-backup 750 rag-backup:rag-backup",
                         "/run/rag-backup/controller.sock 660 rag-backup:rag-backup",
                         "/run/rag-backup/.grpc 700 rag-backup:rag-backup"]
    assert box.run("stat", "-c", "%a %U", "/etc/rag-backup/repository.pass").stdout.split() == ["600", "rag-backup"]
    assert box.sh("for c in ragctl rag-backup-agent rag-backup-controller; do command -v $c; done").stdout.count("/usr/bin/") == 3
    assert _audit(box, "rag-backup", RAG_EVENT="daemon-start", _SYSTEMD_UNIT=CONTROLLER)


def test_the_installed_units_verify_cleanly(box):
    cp = box.sh("systemd-analyze verify --man=no /lib/systemd/system/rag-backup*", check=False)
    assert cp.returncode == 0 and not (cp.stdout + cp.stderr).strip(), cp.stdout + cp.stderr


def test_timers_are_listed(box):
    timers = box.run("systemctl", "list-timers", "--all", "--no-pager").stdout
    for timer in ("rag-backup.timer", "rag-backup-incremental.timer", "rag-backup-prune.timer", "rag-backup-drill.timer"):
        assert timer in timers, timers
    assert box.run("systemctl", "is-enabled", "rag-backup.timer").stdout.strip() == "enabled"


def test_the_timers_service_makes_a_snapshot_audited_with_the_kernels_uid(box):
    box.run("ragctl", "init")
    box.run("systemctl", "start", "rag-backup.service", timeout=300)
    assert len(_snapshots(box)) == 1
    ends = _audit(box, "rag-backup", RAG_EVENT="job-end", RAG_ACTION="backup")
    assert ends, _journal(box, "-t", "rag-backup")
    e = ends[-1]
    assert e["MESSAGE_ID"] == "66fe5dc7978947dbbef5cca7c7d0c43f" and e["RAG_OUTCOME"] == "ok"
    service_uid = box.run("id", "-u", "rag-backup").stdout.strip()  # the timer's service runs ragctl as rag-backup
    assert e["RAG_CALLER_UID"] == service_uid and e["RAG_CALLER_USER"] == "rag-backup" and e["RAG_TRIGGER"] == "timer"
    assert e["RAG_SNAPSHOT"] == _snapshots(box)[0] and set(e["RAG_COMPONENTS"].split(",")) == {"documents", "config"}
    assert "secret" not in json.dumps(_journal(box))  # a .env value never reaches the journal
    assert e["RAG_RESULT"] == "success" and int(e["RAG_BYTES"]) > 0 and e["RAG_JOB"]
    # trusted fields, set by journald: the controller wrote it, as its own user
    assert e["_SYSTEMD_UNIT"] == CONTROLLER and e["_UID"] == service_uid and e["_TRANSPORT"] == "journal"
    assert _audit(box, "rag-backup", RAG_EVENT="job-start", RAG_JOB=e["RAG_JOB"])


def test_a_restore_by_a_group_member_is_under_rag_recovery_with_their_uid(box):
    box.run("useradd", "-m", "-G", "rag-backup", "alice")
    box.run("chgrp", "rag-backup", "/etc/rag-backup/controller.toml")
    box.run("chmod", "0640", "/etc/rag-backup/controller.toml")
    uid = box.run("id", "-u", "alice").stdout.strip()
    sid = _snapshots(box)[0]
    # ragctl claims to be somebody else: the audit entry must not believe it
    box.run("env", "USER=root", "LOGNAME=root", "ragctl", "restore", sid, "--components", "documents",
            "--target", "/srv/rag/restored", user="alice", timeout=300)
    assert box.sh("find /srv/rag/restored -name a.txt | xargs cat").stdout.strip() == "hello"
    rec = _audit(box, "rag-recovery", RAG_EVENT="job-end", RAG_ACTION="restore")
    assert rec and rec[-1]["RAG_CALLER_UID"] == uid and rec[-1]["RAG_CALLER_USER"] == "alice", rec
    assert rec[-1]["RAG_SNAPSHOT"] == sid and rec[-1]["RAG_OUTCOME"] == "ok"
    assert rec[-1]["RAG_CALLER_CLAIMED"] == "root"  # what ragctl said, kept apart


def test_a_user_outside_the_group_is_refused_and_the_refusal_is_in_the_journal(box):
    box.run("useradd", "-m", "mallory")
    uid = box.run("id", "-u", "mallory").stdout.strip()
    cp = box.run("ragctl", "--socket", "/run/rag-backup/controller.sock", "jobs", user="mallory", check=False)
    assert cp.returncode == 7 and "permission denied" in cp.stderr, cp.stderr
    refused = _audit(box, "rag-backup", RAG_EVENT="refused")
    assert refused and refused[-1]["_UID"] == uid and refused[-1]["RAG_CALLER_UID"] == uid, refused
    assert refused[-1]["MESSAGE_ID"] == "8998a44a961447a2b11bb33edf1504d5"


def test_a_stopped_controller_is_killed_by_the_watchdog_and_restarted(box):
    pid = box.run("systemctl", "show", "-p", "MainPID", "--value", CONTROLLER).stdout.strip()
    box.run("kill", "-STOP", pid)
    box.wait(f"[ \"$(systemctl show -p NRestarts --value {CONTROLLER})\" -ge 1 ] && "
             f"systemctl is-active --quiet {CONTROLLER} && "
             f"[ \"$(systemctl show -p MainPID --value {CONTROLLER})\" != {pid} ]", 60, "watchdog restart")
    log = box.run("journalctl", "--no-pager", "-u", CONTROLLER).stdout
    assert "Watchdog timeout" in log, log[-2000:]
    box.wait("ragctl jobs >/dev/null", 30, "the restarted controller to answer")


def test_stop_during_a_backup_leaves_no_snapshot_and_the_next_run_succeeds(box):
    before = _snapshots(box)
    box.sh("head -c 1200M /dev/urandom >/srv/rag/documents/big.bin", timeout=300)  # runs for seconds
    box.run("systemctl", "start", "--no-block", "rag-backup.service")
    box.wait("ragctl jobs --json | grep -q '\"running\"' && "
             "[ $(systemctl show -p ActiveState --value rag-backup.service) = activating ]", 60, "the backup to run")
    box.run("systemctl", "stop", "rag-backup.service", timeout=120)
    box.wait("! ragctl jobs --json | grep -q '\"running\"'", 60, "the controller to end the job")
    ends = _audit(box, "rag-backup", RAG_EVENT="job-end", RAG_ACTION="backup")
    assert ends[-1]["RAG_RESULT"] == "cancelled" and ends[-1]["RAG_SNAPSHOT"] == "-", ends[-1]
    assert _snapshots(box) == before
    box.run("rm", "/srv/rag/documents/big.bin")
    box.run("systemctl", "start", "rag-backup.service", timeout=300)
    assert len(_snapshots(box)) == len(before) + 1
    box.run("ragctl", "verify")


def test_an_upgrade_during_a_backup_restarts_the_daemons_and_keeps_the_repository_consistent(box):
    before = _snapshots(box)
    pid = box.run("systemctl", "show", "-p", "MainPID", "--value", CONTROLLER).stdout.strip()
    box.sh("head -c 400M /dev/urandom >/srv/rag/documents/big.bin", timeout=300)
    box.run("systemctl", "start", "--no-block", "rag-backup.service")
    box.wait("ragctl jobs --json | grep -q '\"running\"'", 60, "the backup to run")
    # the newest backup job, whatever it is by now: it may end before the upgrade restarts the daemons
    job = [j for j in json.loads(box.run("ragctl", "jobs", "--json").stdout) if j["kind"] == "backup"][-1]
    # the same package again: dpkg runs the upgrade path (prerm upgrade, postinst configure OLD-VERSION)
    box.run("dpkg", "-i", "/root/rag-backup.deb", timeout=300)
    box.wait(f"systemctl is-active --quiet {CONTROLLER} && "
             f"[ \"$(systemctl show -p MainPID --value {CONTROLLER})\" != {pid} ]", 60, "the restarted controller")
    box.wait("ragctl jobs >/dev/null", 30, "the restarted controller to answer")
    box.wait("! systemctl is-active --quiet rag-backup.service", 120, "the interrupted backup's ragctl to end")
    jobs = json.loads(box.run("ragctl", "jobs", "--json").stdout)
    assert not [j for j in jobs if j.get("result") == "running"], jobs
    ended = json.loads(box.run("ragctl", "job", str(job["id"]), "--json").stdout)
    # the backup either finished within the stop's grace period, with its snapshot, or was cut short
    # (cancelled or interrupted) and left none: never a snapshot without its data
    if ended["result"] == "success":
        assert _snapshots(box) == [*before, ended["snapshot"]]
    else:
        assert ended["result"] in ("cancelled", "interrupted", "failure") and _snapshots(box) == before, ended
    before = _snapshots(box)
    box.run("ragctl", "verify")
    box.run("rm", "/srv/rag/documents/big.bin")
    box.run("systemctl", "start", "rag-backup.service", timeout=300)
    assert len(_snapshots(box)) == len(before) + 1


def test_a_deploy_backs_up_config_once(box):
    """Touching a watched file fires rag-backup-config.path: one `config` snapshot with reason deploy."""
    units = box.sh("cd /lib/systemd/system && ls rag-backup*.path 2>/dev/null", check=False).stdout.split()
    assert units, "the package ships no rag-backup*.path unit"
    watched = [line.split("=", 1)[1] for line in box.run("systemctl", "cat", units[0]).stdout.splitlines()
               if line.startswith("PathChanged=")]
    target = next(w for w in watched if w.endswith(".env") or not w.endswith("/"))
    deploys = [s for s in json.loads(box.run("ragctl", "snapshots", "--json").stdout) if s["reason"] == "deploy"]
    box.sh(f"mkdir -p $(dirname {target}) && for i in 1 2 3; do echo X=$i >>{target}; done")
    box.wait(f"[ $(ragctl snapshots --json | grep -c '\"reason\": \"deploy\"') -gt {len(deploys)} ]", 120,
             "a deploy snapshot")
    after = [s for s in json.loads(box.run("ragctl", "snapshots", "--json").stdout) if s["reason"] == "deploy"]
    assert len(after) == len(deploys) + 1 and "config" in after[-1]["components"]


def test_purge_keeps_the_repository(box):
    files = box.sh("find /var/backups/rag-backup/repository -type f | sort").stdout
    assert files
    box.run("apt-get", "purge", "-y", "rag-backup", timeout=300)
    assert box.run("dpkg-query", "-W", "-f=${Status}", "rag-backup", check=False).stdout.strip() in ("", "unknown ok not-installed")
    assert box.sh("find /var/backups/rag-backup/repository -type f | sort").stdout == files
    assert box.run("test", "-e", "/etc/rag-backup/controller.toml", check=False).returncode != 0
    assert box.run("test", "-e", "/etc/rag-backup/repository.pass").returncode == 0  # the key stays with the data
    assert box.run("systemctl", "is-active", CONTROLLER, check=False).stdout.strip() != "active"
