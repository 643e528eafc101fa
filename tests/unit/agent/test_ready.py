"""The one wait-until-ready loop: a deadline, the last answer quoted, a typed timeout, an early abort."""
import pytest

from ragbackup import errors
from ragbackup.agent.ready import NotReady, wait_until


def test_wait_until_returns_once_the_probe_passes() -> None:
    answers = iter([False, False, True])
    waited = wait_until(lambda: next(answers), 5, "thing", interval_s=0.01)
    assert waited >= 0 and next(answers, "done") == "done"


def test_wait_until_names_what_and_how_long_and_the_last_problem() -> None:
    def probe() -> bool:
        raise ConnectionRefusedError("nobody home")

    with pytest.raises(NotReady, match=r"redis at 127.0.0.1:1 not ready after 0.3s.*nobody home") as info:
        wait_until(probe, 0.3, "redis at 127.0.0.1:1", interval_s=0.05)
    assert isinstance(info.value, errors.Unavailable) and info.value.exit_code == 7


def test_wait_until_stops_at_what_abort_raises_and_at_other_errors() -> None:
    calls = []

    def abort() -> None:
        if calls:
            raise errors.Cancelled("the controller ended the drill")

    with pytest.raises(errors.Cancelled):
        wait_until(lambda: calls.append(1) or False, 5, "thing", interval_s=0.01, abort=abort)
    assert calls == [1]
    with pytest.raises(KeyError):  # not a "not yet": a bug is not waited out
        wait_until(lambda: {}["x"], 5, "thing")
