"""In: a recording fake systemctl runner with scripted answers (PID 1 is not systemd on the test VMs).
Out: the argv SystemdService builds, the states it parses and the typed errors it raises.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import pytest
from ragbackup import errors
from ragbackup.agent.services.base import ServiceSpec, make_controller
from ragbackup.agent.services.systemd import (
    Completed,
    SystemdService,
    parse_show,
    run_systemctl,
    state_from_properties,
    systemctl_argv,
)

SHOW = ["systemctl", "--no-ask-password", "--property=LoadState,ActiveState,FreezerState", "show", "redis.service"]


class FakeSystemctl:
    """Records argv/timeouts; answers `show` from self.props and other verbs from self.results."""

    def __init__(self, props: str = "LoadState=loaded\nActiveState=active\nFreezerState=running\n"):
        self.props = props
        self.results: dict[str, Completed] = {}
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], timeout_s: float) -> Completed:
        self.calls.append((list(argv), timeout_s))
        verb = argv[-2]
        if verb == "show":
            return Completed(tuple(argv), 0, self.props, "")
        return self.results.get(verb, Completed(tuple(argv), 0, "", ""))

    def verbs(self) -> list[str]:
        return [argv[-2] for argv, _ in self.calls]

    def fail(self, verb: str, stderr: str, code: int = 1) -> None:
        self.results[verb] = Completed(("systemctl", verb), code, "", stderr)


def service(fake: FakeSystemctl, unit: str = "redis.service") -> SystemdService:
    return SystemdService(unit, runner=fake, timeout_s=7.0)


def test_argv_construction() -> None:
    assert systemctl_argv("stop", "redis.service") == ["systemctl", "--no-ask-password", "stop", "redis.service"]
    assert systemctl_argv("show", "u", "--property=A") == ["systemctl", "--no-ask-password", "--property=A", "show", "u"]


def test_status_uses_show_with_the_three_properties() -> None:
    fake = FakeSystemctl()
    assert service(fake).status() == "running"
    assert fake.calls == [(SHOW, 7.0)]


@pytest.mark.parametrize("props, state", [
    ({"LoadState": "loaded", "ActiveState": "active", "FreezerState": "running"}, "running"),
    ({"LoadState": "loaded", "ActiveState": "reloading"}, "running"),
    ({"LoadState": "loaded", "ActiveState": "activating"}, "running"),
    ({"LoadState": "loaded", "ActiveState": "deactivating"}, "running"),
    ({"LoadState": "loaded", "ActiveState": "inactive", "FreezerState": "running"}, "stopped"),
    ({"LoadState": "loaded", "ActiveState": "failed"}, "stopped"),
    ({"LoadState": "masked", "ActiveState": "inactive"}, "stopped"),
    ({"LoadState": "not-found", "ActiveState": "inactive"}, "missing"),
    ({"LoadState": "not-found", "ActiveState": "active"}, "running"),  # unit file deleted, still running
    ({"LoadState": "loaded", "ActiveState": "active", "FreezerState": "frozen"}, "paused"),
    ({"LoadState": "loaded", "ActiveState": "active", "FreezerState": "freezing"}, "paused"),
    ({"LoadState": "loaded", "ActiveState": "active", "FreezerState": "thawing"}, "running"),
])
def test_state_from_properties(props: dict[str, str], state: str) -> None:
    assert state_from_properties(props) == state


def test_parse_show_ignores_noise() -> None:
    assert parse_show("LoadState=loaded\n\nActiveState=active\ngarbage\nX= a=b \n") == {
        "LoadState": "loaded", "ActiveState": "active", "X": "a=b"}


def test_stop_waits_for_the_job_beyond_its_timeout() -> None:
    fake = FakeSystemctl()
    service(fake).stop(timeout_s=20)
    assert fake.calls == [(["systemctl", "--no-ask-password", "stop", "redis.service"], 30.0)]


def test_start_thaws_a_frozen_unit_first() -> None:
    fake = FakeSystemctl("LoadState=loaded\nActiveState=active\nFreezerState=frozen\n")
    service(fake).start()
    assert fake.verbs() == ["show", "show", "thaw", "start"]


def test_start_of_a_running_unit_is_just_start() -> None:
    fake = FakeSystemctl()
    service(fake).start()
    assert fake.verbs() == ["show", "start"]


def test_pause_freezes_a_running_unit_once() -> None:
    fake = FakeSystemctl()
    service(fake).pause()
    assert fake.calls[-1][0] == ["systemctl", "--no-ask-password", "freeze", "redis.service"]
    frozen = FakeSystemctl("LoadState=loaded\nActiveState=active\nFreezerState=frozen\n")
    service(frozen).pause()
    assert frozen.verbs() == ["show"]  # already paused: nothing to do


@pytest.mark.parametrize("stderr", [
    "Unknown command verb freeze.",  # systemd < 246
    "Failed to freeze unit redis.service: Unit 'redis.service' does not support freezing.",
    "Failed to freeze unit redis.service: Operation not supported",  # cgroup v1
])
def test_pause_unsupported_is_a_usage_error(stderr: str) -> None:
    fake = FakeSystemctl()
    fake.fail("freeze", stderr)
    with pytest.raises(errors.UsageError, match="pause is not supported for systemd unit redis.service"):
        service(fake).pause()


def test_pause_of_a_stopped_unit_is_refused() -> None:
    fake = FakeSystemctl("LoadState=loaded\nActiveState=inactive\n")
    with pytest.raises(errors.UsageError, match="it is stopped"):
        service(fake).pause()
    assert "freeze" not in fake.verbs()


def test_unpause_thaws_only_when_frozen() -> None:
    running = FakeSystemctl()
    service(running).unpause()
    assert running.verbs() == ["show"]
    frozen = FakeSystemctl("LoadState=loaded\nActiveState=active\nFreezerState=frozen\n")
    service(frozen).unpause()
    assert frozen.verbs() == ["show", "thaw"]


@pytest.mark.parametrize("stderr, error", [
    ("Failed to stop nope.service: Unit nope.service not loaded.", errors.NotFound),
    ("Failed to start nope.service: Unit nope.service not found.", errors.NotFound),
    ("System has not been booted with systemd as init system (PID 1). Can't operate.\n"
     + "Failed to connect to bus: Host is down", errors.Unavailable),
    ("Job for redis.service failed because the control process exited with error code.", errors.Unhealthy),
    ("Failed to start redis.service: Access denied", errors.Unavailable),
])
def test_failures_are_typed(stderr: str, error: type[errors.RagBackupError]) -> None:
    fake = FakeSystemctl()
    fake.fail("start", stderr)
    with pytest.raises(error) as info:
        service(fake).start()
    assert "systemctl start redis.service" in info.value.message
    assert stderr.splitlines()[0] in info.value.message


@pytest.mark.parametrize("unit", ["", "-H evil", "--now", "a b"])
def test_bad_unit_names_are_config_errors(unit: str) -> None:
    with pytest.raises(errors.ConfigError):
        SystemdService(unit)


def test_make_controller_builds_systemd() -> None:
    ctl = make_controller(ServiceSpec("systemd", "rag-chroma.service"))
    assert isinstance(ctl, SystemdService) and ctl.describe() == "systemd unit rag-chroma.service"


def test_runner_translates_missing_binary_and_timeout() -> None:
    with pytest.raises(errors.Unavailable, match="not installed"):
        run_systemctl(["/nonexistent/systemctl", "show", "x"], 5)
    with pytest.raises(errors.Unavailable, match="did not finish within 0.2s"):
        run_systemctl(["sleep", "5"], 0.2)


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="the host runs systemd as PID 1")
def test_real_systemctl_without_systemd_is_unavailable() -> None:
    with pytest.raises(errors.Unavailable, match="systemd"):
        SystemdService("redis-server.service").status()
