"""In: a systemd unit name; every systemctl call goes through run_systemctl (timeout; tests replace it).
Out: SystemdService (stop/start/status/freeze) for capture/restore; systemctl failures become typed errors.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ragbackup import errors
from ragbackup.agent.services.base import MISSING, PAUSED, RUNNING, STOPPED

SYSTEMCTL = "systemctl"
CALL_TIMEOUT_S = 30.0
STATUS_PROPERTIES = ("LoadState", "ActiveState", "FreezerState")

_RUNNING_STATES = {"active", "reloading", "activating", "deactivating", "refreshing"}
_UNSUPPORTED_MARKERS = (
    "unknown command verb", "unknown operation", "unknown verb", "not supported", "does not support",
)
_NO_SYSTEMD_MARKERS = ("failed to connect to bus", "not been booted with systemd", "system has not been booted")
_NOT_FOUND_MARKERS = ("not found", "not loaded")


@dataclass(frozen=True)
class Completed:
    """What one systemctl call returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run_systemctl(argv: Sequence[str], timeout_s: float) -> Completed:
    """Run one systemctl command (C locale, no pager, no password prompt); translate a missing binary or a timeout."""
    env = {**os.environ, "LC_ALL": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                              env=env, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as exc:
        raise errors.Unavailable(f"{argv[0]} is not installed: systemd is not available on this host") from exc
    except subprocess.TimeoutExpired as exc:
        raise errors.Unavailable(f"`{' '.join(argv)}` did not finish within {timeout_s:g}s") from exc
    return Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


def systemctl_argv(verb: str, unit: str, *extra: str) -> list[str]:
    """argv for `systemctl [extra] VERB UNIT`; --no-ask-password so a root agent never blocks on a prompt."""
    return [SYSTEMCTL, "--no-ask-password", *extra, verb, unit]


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A,B UNIT` output (KEY=VALUE lines) as a dict."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def state_from_properties(props: dict[str, str]) -> str:
    """Our four states from LoadState / ActiveState / FreezerState."""
    active = props.get("ActiveState", "")
    if props.get("LoadState") == "not-found" and active in ("", "inactive", "failed"):
        return MISSING
    if props.get("FreezerState") in ("frozen", "freezing"):
        return PAUSED
    return RUNNING if active in _RUNNING_STATES else STOPPED


def classify_failure(result: Completed, what: str) -> errors.RagBackupError:
    """A typed error for a failed systemctl call, keeping systemctl's own message."""
    message = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
    lower = message.lower()
    if any(m in lower for m in _NO_SYSTEMD_MARKERS):
        return errors.Unavailable(f"{what}: systemd cannot be reached: {message}")
    if any(m in lower for m in _NOT_FOUND_MARKERS):
        return errors.NotFound(f"{what}: {message}")
    if "job" in lower and "failed" in lower:
        return errors.Unhealthy(f"{what}: {message}")
    return errors.Unavailable(f"{what}: {message}")


def pause_unsupported(result: Completed) -> bool:
    """True when systemctl has no freeze/thaw verb or the cgroup setup cannot freeze (cgroup v1)."""
    lower = (result.stderr + result.stdout).lower()
    return any(m in lower for m in _UNSUPPORTED_MARKERS)


class SystemdService:
    """A systemd unit as a ServiceController."""

    def __init__(self, unit: str, runner: Callable[[Sequence[str], float], Completed] = run_systemctl,
                 timeout_s: float = CALL_TIMEOUT_S):
        if not unit or unit.startswith("-") or any(c.isspace() for c in unit):
            raise errors.ConfigError(f"systemd unit name {unit!r} is not valid")
        self.unit = unit
        self._run = runner
        self._timeout_s = timeout_s

    def describe(self) -> str:
        """`systemd unit NAME`."""
        return f"systemd unit {self.unit}"

    def _call(self, verb: str, *extra: str, timeout_s: float | None = None) -> Completed:
        """Run `systemctl VERB UNIT`, raising a typed error on failure."""
        result = self._run(systemctl_argv(verb, self.unit, *extra), timeout_s or self._timeout_s)
        if result.returncode != 0:
            raise classify_failure(result, f"systemctl {verb} {self.unit}")
        return result

    def status(self) -> str:
        """running / stopped / paused / missing, from `systemctl show` (is-active cannot tell missing or frozen)."""
        props = ",".join(STATUS_PROPERTIES)
        return state_from_properties(parse_show(self._call("show", f"--property={props}").stdout))

    def stop(self, timeout_s: float) -> None:
        """`systemctl stop`, waiting `timeout_s` plus a margin for the job (the unit's TimeoutStopSec rules inside)."""
        self._call("stop", timeout_s=timeout_s + 10.0)

    def start(self) -> None:
        """`systemctl start` (thaws first when frozen, since start does not)."""
        if self.status() == PAUSED:
            self.unpause()
        self._call("start")

    def pause(self) -> None:
        """`systemctl freeze`; UsageError when this systemd or cgroup setup cannot freeze units."""
        state = self.status()
        if state == PAUSED:
            return
        if state != RUNNING:
            raise errors.UsageError(f"cannot pause {self.describe()}: it is {state}")
        result = self._run(systemctl_argv("freeze", self.unit), self._timeout_s)
        if result.returncode == 0:
            return
        if pause_unsupported(result):
            raise errors.UsageError(
                f"pause is not supported for {self.describe()} (systemctl freeze: "
                f"{(result.stderr or result.stdout).strip()}); use consistency 'stop' or 'online'")
        raise classify_failure(result, f"systemctl freeze {self.unit}")

    def unpause(self) -> None:
        """`systemctl thaw` when frozen; otherwise nothing."""
        if self.status() == PAUSED:
            self._call("thaw")
